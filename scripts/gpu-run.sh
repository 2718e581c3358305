#!/usr/bin/env bash
# The project's checks on an NVIDIA GPU: builds the tests and the benches with the `cuda`
# features (LLVM from `scripts/cuda-llvm.sh`, through pip), then, where a GPU is present, runs
# the device-level tests and the estimator and optimizer benches on CUDA; it prints what it
# measured.
#
# Status (2026-12-04): `--build` ran on this project's 2-core machine (see docs/ci.md#cuda for
# its times and the binaries' sizes); the run itself has not: no GPU has been available. On
# two or more GPUs it also compares `DeviceReduce` with `HostReduce` (tests/multi_device.rs).
#
#     scripts/gpu-run.sh            # build, and run what this machine's GPUs allow
#     scripts/gpu-run.sh --build    # build only (a machine without a GPU)
#
# Needs at run time the NVIDIA driver (`libcuda.so`, opened when a program starts: cudarc's
# dynamic loading), no CUDA toolkit. LLVM is linked statically into every test and bench
# binary (cubecl-cuda compiles its kernels to PTX with it), so the binaries are large.
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=false
case "${1:-}" in
  --build) build_only=true ;;
  "") ;;
  *)
    echo "usage: scripts/gpu-run.sh [--build]" >&2
    exit 2
    ;;
esac

env=$(scripts/cuda-llvm.sh)
eval "$env"
features=(--features adapeft/cuda,adapeft-testing/cuda)

start=$(date +%s)
echo "== building the tests with cuda (test profile)"
cargo test --workspace "${features[@]}" --no-run
echo "== tests built in $(($(date +%s) - start)) s; building the benches with cuda (release)"
bench_start=$(date +%s)
cargo bench "${features[@]}" --bench estimators --bench optim --no-run
echo "== benches built in $(($(date +%s) - bench_start)) s"
if $build_only; then
  echo "built; run scripts/gpu-run.sh on a machine with an NVIDIA GPU to run them"
  exit 0
fi

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no NVIDIA GPU found (nvidia-smi -L failed): built only" >&2
  exit 1
fi
gpus=$(nvidia-smi -L | grep -c '^GPU ')
echo "== $gpus GPU(s):"
nvidia-smi -L

echo "== the device-level tests on CUDA"
# The DeviceReduce comparison (tests/multi_device.rs) needs two GPUs; it fails rather than
# passing unrun without them, so it is left out here on a machine with one.
skip=()
if [ "$gpus" -lt 2 ]; then
  echo "(one GPU: device_reduce_on_two_cuda_gpus_equals_host_reduce left out)"
  skip=(-- --skip device_reduce)
fi
ADAPEFT_TEST_BACKENDS=cuda ADAPEFT_TEST_CUDA_DEVICES=$gpus \
  cargo test --workspace "${features[@]}" "${skip[@]}"

echo "== the benches on CUDA (each prints its ratios after criterion's report)"
ADAPEFT_TEST_BACKENDS=cuda cargo bench "${features[@]}" --bench estimators --bench optim
echo "== done"
