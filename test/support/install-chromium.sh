#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard's browser test (playwright-core
# drives it; Playwright's own browser download cannot work on a closed
# network). Idempotent: does nothing when chromium is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../../scripts/apt-install.sh" chromium chromium fonts-dejavu-core
