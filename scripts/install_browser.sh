#!/usr/bin/env bash
# The web page test drives a real headless Chromium: Debian's chromium package (no browser download
# by playwright). Installs it when /usr/bin/chromium is missing; needs root or sudo and apt-get.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "no apt-get here: install Chromium so that /usr/bin/chromium exists (or set MEDGLIP_CHROMIUM=/path/to/chrome)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
