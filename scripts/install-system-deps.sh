#!/usr/bin/env bash
# System packages the project needs: python3.11 with venv (the Triton Python stub is built for 3.11), libsndfile
# (soundfile wheels bundle it, but mp3 support needs a recent one) and chromium (tests/test_page_browser.py drives
# it headless through Playwright; no browser download). Installs only what is missing.
set -euo pipefail
need=()
command -v python3.11 >/dev/null 2>&1 || need+=(python3.11 python3.11-venv)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (run as root or install them yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
