#!/usr/bin/env bash
# Browser tests drive Debian's Chromium (Playwright cannot download its own browser offline): install it if missing,
# with a CJK font so the Chinese widget screenshots show characters, not boxes.
set -euo pipefail
missing=()
if ! command -v chromium >/dev/null && [ -z "${CHROMIUM:-}" ]; then missing+=(chromium); fi
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then missing+=(fonts-noto-cjk); fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "Installing ${missing[*]} for the browser tests..."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
