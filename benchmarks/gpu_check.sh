#!/usr/bin/env bash
# The fused Triton kernel's GPU check (issue 6) in one call on a lent H100/H200, at most 9.75 minutes:
# correctness and AOT PTX launch (benchmarks/fused_check.py sections 1-2), the tile sweep
# (section 3), then the benchmark tables and the issue's targets (section 4).
#
#   device tool:  run(command="bash benchmarks/gpu_check.sh", timeout_s=600)
#
# Each step has its own time limit, so a slow or hung step leaves the others' results; logs
# go to $OUT (the device tool brings them back) or ./gpu_check_out. Exit status: section 1-2's.
set -u
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
timeout 240 python3 benchmarks/fused_check.py --sections 1,2 2>&1 | tee "$out/check.log"
status=${PIPESTATUS[0]}
timeout 75 python3 benchmarks/fused_check.py --sections 3 2>&1 | tee "$out/tiles.log"
timeout 270 python3 benchmarks/fused_check.py --sections 4 2>&1 | tee "$out/benchmark.md"
echo "gpu_check: sections 1-2 exit status $status"
exit "$status"
