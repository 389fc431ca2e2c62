"""``python -m cvaelib.teach``: see :mod:`cvaelib.teach.cli`."""

import sys

from .cli import main

sys.exit(main())
