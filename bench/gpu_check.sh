#!/usr/bin/env bash
# Everything that needs a GPU, in one go, on a machine with a CUDA device, nvcc and a CUDA build
# of torch (no network needed):
#   1. build ganfast with its CUDA kernels (pip install --no-build-isolation -e .)
#   2. python -m pytest tests -q          (tests/test_cuda.py runs; the CPU suite too)
#   3. compute-sanitizer memcheck and racecheck on bench/gpu_sanitize.py
#   4. python -m pytest bench -q          (bench/bench_gpu.py and the CPU benchmarks)
# Logs go to "$OUT" if set, else ./gpu-results: build.log, tests.log, memcheck.log,
# racecheck.log, bench.log, bench.json and summary.txt (one line per step: exit code, seconds).
# Each step has a time limit (env GPU_CHECK_*_S) so that the whole script stays under ~9 minutes
# on an H100; the script goes on after a failed step and exits non-zero if any step failed.
#
#   bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

LOG_DIR="${OUT:-$PWD/gpu-results}"
mkdir -p "$LOG_DIR"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
# One architecture is enough to test on this machine, and halves the build (setup.py's default
# list has four); override with TORCH_CUDA_ARCH_LIST.
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null || echo 9.0)"
  export TORCH_CUDA_ARCH_LIST
fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
export GANFAST_CUDA=1

SUMMARY="$LOG_DIR/summary.txt"
: > "$SUMMARY"
failed=0

step() {  # step NAME LIMIT_S COMMAND...: run, log to NAME.log, record the exit code and time
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "=== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" > "$LOG_DIR/$name.log" 2>&1
  local rc=$?
  local line="$name: exit $rc, $((SECONDS - start)) s"
  [ "$rc" -eq 124 ] && line="$line (TIMED OUT after ${limit}s)"
  echo "$line" | tee -a "$SUMMARY"
  tail -n 25 "$LOG_DIR/$name.log"
  [ "$rc" -eq 0 ] || failed=1
  return "$rc"
}

{
  echo "date: $(date -u)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: unavailable"
  "$PY" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
  echo "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS"
} | tee -a "$SUMMARY"

if ! step build "${GPU_CHECK_BUILD_S:-240}" "$PY" -m pip install --no-build-isolation --no-deps -e .; then
  echo "build failed: nothing else can run" | tee -a "$SUMMARY"
  exit 1
fi
"$PY" -c 'import torch, ganfast; from ganfast import _ext
assert ganfast.extension_available(), _ext.UNAVAILABLE_REASON
assert _ext.WITH_CUDA, "ganfast._C was built without CUDA"
assert torch.cuda.is_available(), "no CUDA device visible"
print("ganfast CUDA kernels loaded on", torch.cuda.get_device_name())' 2>&1 | tee -a "$SUMMARY" || failed=1

step tests "${GPU_CHECK_TESTS_S:-150}" "$PY" -m pytest tests -q -p no:cacheprovider

# memcheck: no caching allocator, so every tensor is its own allocation and an out-of-bounds
# access is caught at the tensor's edge rather than inside a larger cached block.
step memcheck "${GPU_CHECK_MEMCHECK_S:-90}" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
  compute-sanitizer --tool memcheck --error-exitcode 3 --print-limit 50 "$PY" bench/gpu_sanitize.py
step racecheck "${GPU_CHECK_RACECHECK_S:-90}" \
  compute-sanitizer --tool racecheck --error-exitcode 3 --print-limit 50 "$PY" bench/gpu_sanitize.py --quick

step bench "${GPU_CHECK_BENCH_S:-180}" "$PY" -m pytest bench -q -p no:cacheprovider \
  --benchmark-json "$LOG_DIR/bench.json"

echo "gpu_check: $([ "$failed" -eq 0 ] && echo "all steps passed" || echo "SOME STEPS FAILED") (logs in $LOG_DIR)" \
  | tee -a "$SUMMARY"
exit "$failed"
