#!/usr/bin/env bash
# Install Debian's chromium for the dashboard's browser test (test/admin/dashboard-browser.test.ts),
# driven by playwright-core. Idempotent: does nothing when /usr/bin/chromium is already there.
# Never use `npx playwright install`: it downloads its own browser builds, which cannot be fetched here.
#
#   scripts/install-chromium.sh        # needs root (apt-get)
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get not found (Debian/Ubuntu only); install chromium at /usr/bin/chromium by hand" >&2
  exit 1
fi

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then sudo_cmd=(sudo); fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
