#!/usr/bin/env bash
# Headless Chromium + ChromeDriver (Debian packages) for tests/test_browser.py, which opens the widget lesson in
# JupyterLab and clicks it like a student would. Skipped quietly where apt-get is unavailable (the test then skips
# with its reason).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  echo "installed $(chromium --version 2>/dev/null)"
else
  echo "chromium not installed and apt-get unavailable: the browser test will skip"
fi
