#!/usr/bin/env bash
# The first-GPU check in one command (under 8 minutes): TensorRT engines with the PairwiseKernel plugin from
# distance-kernel models (frac fp32/fp16, log fp32) and engines of the bundled weights (fp32, fp16), each against
# ONNX Runtime through Polygraphy; the fused kernel in a model under CUDA graphs against eager; INT8 (TensorRT 10)
# against fp32; latency of torch / CUDA graphs / ONNX Runtime / TensorRT at 1x3x90x160 and 1x3x720x1280; the fused
# kernel against SDPA. Ends with one JSON line (also in $OUT/gpu_check.json); step logs in $OUT (default
# ./gpu_check_out). See benchmarks/gpu_check.py.
#
#   device tool:  run(command="bash benchmarks/gpu_check.sh", timeout_s=540)
#
# Exit status: 0 all checks passed, 1 a check failed, 2 no CUDA device.
set -u
cd "$(dirname "$0")/.."
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 2>/dev/null || true
exec python3 benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}" "$@"
