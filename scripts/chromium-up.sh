#!/usr/bin/env bash
# Browser tests drive Debian's Chromium (Playwright cannot download its own browser offline): install it if missing.
set -euo pipefail
if command -v chromium >/dev/null || [ -n "${CHROMIUM:-}" ]; then exit 0; fi
echo "Installing Debian's chromium for the browser tests..."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk
