#!/usr/bin/env bash
# System packages the project needs, from Debian: python3.11 with venv (the Triton Python stub is built for 3.11),
# chromium (tests/integration/page/test_page_browser.py drives it headless through Playwright; no browser download), and the servers
# the production-shaped stack runs on, which the tests start themselves on free loopback ports (tests/support/
# services.py): postgresql (Airflow's metadata database and the lake's shared catalog) and redis-server (the Celery
# broker). Installs only what is missing.
set -euo pipefail
need=()
command -v python3.11 >/dev/null 2>&1 || need+=(python3.11 python3.11-venv)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (run as root or install them yourself)" >&2
  exit 1
fi
apt-get update -qq
# policy-rc.d: install the servers without starting their system-wide instances (the tests start their own).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
