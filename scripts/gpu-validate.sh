#!/usr/bin/env bash
# Run the gpu check, its verdict rules and the host check on a real NVIDIA GPU host, and
# keep everything seen in one folder for docs/gpu.md ("Seen on a real GPU").
#
#   scripts/gpu-validate.sh [OUT_DIR]
#
# Installs the project (with nvidia-ml-py) into a fresh virtual environment under OUT_DIR,
# then writes:
#   versions.txt         python, nvidia-ml-py, driver (nvidia-smi), kernel
#   nvidia-smi.txt       nvidia-smi -q (ECC, ROW_REMAPPER, PERFORMANCE, PCIE, NVLINK ...)
#   probe.json           python -m monai_slo.checks.gpu: raw NVML readings + one check run
#   probe.rc             its exit status (0 ok, 1 check failed)
#   config.yaml          the config used below (a gpu and a host check, tier workstation)
#   check.txt/.json      monai-slo check -c config.yaml (table and -o json where supported)
#   summary.txt          verdict / suggested action per GPU and the NOT_SUPPORTED readings
# A failing check is a result, not an error: the script exits 0 unless it cannot run.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${TMPDIR:-/tmp}/gpu-validate-$(hostname -s 2>/dev/null || echo host)-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/run.log"
exec > >(tee -a "$log") 2>&1
echo "writing to $out"

python="${PYTHON:-python3}"
venv="$out/venv"
# Without a package index (an offline GPU host), MONAI_SLO_VENV names a virtual environment
# that already has the project and nvidia-ml-py installed (e.g. the checkout's .venv).
if [ -n "${MONAI_SLO_VENV:-}" ]; then
    venv="$MONAI_SLO_VENV"
    keep_venv=1
else
    keep_venv=0
    "$python" -m venv "$venv" || { echo "cannot create a virtual environment"; exit 2; }
    "$venv/bin/python" -m pip install --quiet "$repo" nvidia-ml-py || {
        echo "pip install failed; falling back to $repo/.venv"
        rm -rf "$venv"
        venv="$repo/.venv"
        keep_venv=1
    }
fi
"$venv/bin/python" -c "import monai_slo, pynvml" \
    || { echo "no usable environment with monai_slo and nvidia-ml-py at $venv"; exit 2; }

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(hostname)"
    echo "kernel: $(uname -srm)"
    echo "python: $("$venv/bin/python" -V 2>&1)"
    echo "nvidia-ml-py: $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nvidia-ml-py"))' 2>&1)"
    echo "monai-slo: $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("monai-slo"))' 2>&1)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id --format=csv 2>&1
    else
        echo "nvidia-smi: not found"
    fi
} > "$out/versions.txt"
cat "$out/versions.txt"

if command -v nvidia-smi >/dev/null; then
    nvidia-smi -q > "$out/nvidia-smi.txt" 2>&1 || true
    nvidia-smi topo -m > "$out/nvidia-smi-topo.txt" 2>&1 || true
fi

count="$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l | tr -d ' ')"
[ "${count:-0}" -ge 1 ] || count=1

timeout 120 "$venv/bin/python" -m monai_slo.checks.gpu --expected-count "$count" \
    > "$out/probe.json" 2> "$out/probe.stderr"
echo $? > "$out/probe.rc"
echo "python -m monai_slo.checks.gpu: exit $(cat "$out/probe.rc")"

cat > "$out/config.yaml" <<EOF
storage: $out/history.sqlite
environments:
  - name: gpu-validate
    tier: workstation
    services:
      - name: inference-node
        checks:
          - {name: gpus, kind: gpu, expected_count: $count}
          - {name: gpus-strict, kind: gpu, expected_count: $count, fail_on: degraded}
      - name: host-conformance
        checks:
          - {name: conformance, kind: host}
EOF

timeout 180 "$venv/bin/monai-slo" check -c "$out/config.yaml" > "$out/check.txt" 2>&1
echo "monai-slo check: exit $?" | tee "$out/check.rc"
timeout 180 "$venv/bin/monai-slo" check -c "$out/config.yaml" -o json > "$out/check.json" 2>&1 || true
cat "$out/check.txt"

"$venv/bin/python" - "$out/probe.json" > "$out/summary.txt" 2>&1 <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
check = report["check"]
print("check:", "ok" if check["success"] else f"failed ({check['reason']})")
print("detail:", check["detail"])
print("duration_seconds:", check["duration_seconds"])
for s in check["series"]:
    if s["name"] in ("gpu_health", "gpu_suggested_action") and s["value"] == 1:
        label = s["labels"].get("verdict") or s["labels"].get("action")
        print(f"GPU {s['labels']['gpu']}: {s['name']} = {label}")
for gpu in report["probe"].get("gpus", []):
    missing = [k for k, v in gpu.items() if isinstance(v, dict) and "error" in v]
    print(f"GPU {gpu['index']}: errors/not supported: " +
          (", ".join(f"{k}={gpu[k]['error']}" for k in missing) or "none"))
EOF
cat "$out/summary.txt"
[ "$keep_venv" = 1 ] || rm -rf "$venv"
echo "done: $out"
exit 0
