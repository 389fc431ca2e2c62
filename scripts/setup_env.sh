#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the kit with its test extras.
# Installs from PyPI only (GitHub is not needed): CLIP comes from PyPI's `openai-clip`, which cvaelib patches for
# setuptools >= 81. Torch is asked for with a lower bound only, so an installed torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import cvaelib, torch; print(f'cvaelib ready: torch {torch.__version__}, python $(.venv/bin/python -V 2>&1 | cut -d" " -f2)')"
