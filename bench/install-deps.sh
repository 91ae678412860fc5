#!/usr/bin/env bash
# Installs the peers the benchmarks start (Orthanc, DCMTK, blackbox_exporter), skipping what is
# already there. The tests do not need blackbox_exporter, so scripts/install-test-deps.sh
# leaves it out.
set -euo pipefail

need=()
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || need+=(orthanc)
command -v storescp >/dev/null 2>&1 || need+=(dcmtk)
command -v echoscu >/dev/null 2>&1 || need+=(dcmtk)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || need+=(prometheus-blackbox-exporter)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
# The Debian package would start blackbox_exporter as a service; the bench runs its own.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
