#!/usr/bin/env bash
# Set up the environment (and the browser used by the widget test), then run the whole test suite:
# unit tests on real MNIST/Fashion-MNIST, CLI contract, every notebook in SMOKE mode, benchmarks in quick mode.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser (Debian packages) installs while pip fills the virtual environment.
BROWSER_LOG="$(mktemp)"
bash scripts/install_browser.sh >"$BROWSER_LOG" 2>&1 &
browser=$!
bash scripts/setup_env.sh
export MPLBACKEND=Agg
# pytest runs two workers on two cores; one OpenMP thread each (and in the subprocesses they start) avoids
# oversubscription, which makes PyTorch's thread pool spin-wait and run 10x slower.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export CVAELIB_DATA="${CVAELIB_DATA:-$(cd .. && pwd)/shared/data}"
export CVAELIB_CACHE="${CVAELIB_CACHE:-$HOME/.cache/cvaelib}"
# The judge and the TinyCLIP that many tests share take a minute each to train on a cold cache: train them from now
# on, next to the tests, one process per core, so the test workers rarely wait (a file lock keeps every model to one
# training; a test that needs one before it is ready waits for it).
# Only for the whole suite: a selection (`bash scripts/test.sh -k name`) trains just what its tests need.
WARM_LOG="$(mktemp)"
warm=""
if [ "$#" -eq 0 ]; then
  .venv/bin/python tests/tiny_models.py --jobs 2 >"$WARM_LOG" 2>&1 &
  warm=$!
fi
wait "$browser" || echo "browser install failed: the browser test will be skipped"
cat "$BROWSER_LOG"; rm -f "$BROWSER_LOG"
# The widget tests also run under Colab's ipywidgets 7.7 (next to the venv's 8.x), from a separate folder.
IPYW7="$PWD/.venv/ipywidgets7"
if [ ! -d "$IPYW7/ipywidgets" ]; then
  .venv/bin/python -m pip install -q --no-deps --target "$IPYW7" "ipywidgets==7.7.5" ipython_genutils \
    2>&1 | grep -v "is ignored" || true
fi
export CVAELIB_IPYWIDGETS7_DIR="$IPYW7"
set +e
.venv/bin/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider --durations=15 "$@"
status=$?
warm_status=0
if [ -n "$warm" ]; then wait "$warm"; warm_status=$?; fi
set -e
if [ "$warm_status" -ne 0 ]; then
  echo "warning: training the shared test models failed (the tests trained what they needed):"; tail -5 "$WARM_LOG"
fi
rm -f "$WARM_LOG"
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating as failure"; exit 1
fi
exit "$status"
