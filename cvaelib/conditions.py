"""Moved: the conditioning layer is :mod:`cvaelib.conditioning`, prepared-folder specs are :mod:`cvaelib.data.prepared`.

Kept so that ``from cvaelib.conditions import with_clip_condition`` (lessons 06 and 07) keeps working.
"""

from .conditioning.clip import with_clip_condition
from .data.prepared import PREPARED_DATASETS, image_ids, load_prepared_split, parse_prepared

__all__ = ["PREPARED_DATASETS", "image_ids", "load_prepared_split", "parse_prepared", "with_clip_condition"]
