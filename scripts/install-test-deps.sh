#!/usr/bin/env bash
# Installs the real peers the tests start (Orthanc, DCMTK), skipping what is already there.
set -euo pipefail

need=()
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || need+=(orthanc)
command -v storescp >/dev/null 2>&1 || need+=(dcmtk)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
