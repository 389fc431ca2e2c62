#!/usr/bin/env bash
# Set up the environment, then train a small conditional VAE on the bundled digits and save a sample grid.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
MPLBACKEND="${MPLBACKEND:-Agg}" .venv/bin/python -m cvaelib quickstart "$@"
