#!/usr/bin/env bash
# The tests validate the DICOM-SEG and SR that medglip writes with dciodvfy, David Clunie's DICOM
# validator from Debian's dicom3tools package. Installs it when dciodvfy is missing; needs root or
# sudo and apt-get.
set -euo pipefail
if command -v dciodvfy >/dev/null; then
  echo "dciodvfy present: $(command -v dciodvfy)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "no apt-get here: install dicom3tools (dciodvfy) from https://www.dclunie.com/dicom3tools.html" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dicom3tools >/dev/null
command -v dciodvfy
