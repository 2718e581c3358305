#!/usr/bin/env bash
# The project's checks on an NVIDIA GPU: builds the tests and the benches with the `cuda`
# features (LLVM from `scripts/cuda-llvm.sh`, through pip), then, where a GPU is present, runs
# the device-level tests and the estimator and optimizer benches on CUDA; it prints what it
# measured.
#
# Status (2026-12-03): written, not yet run. Its build is two more builds of burn (the test
# profile and the benches' release profile, with cuda): about an hour on this project's 2-core
# machine, not yet made; no GPU has been available. The multi-device comparisons on two CUDA
# GPUs (`DeviceReduce`) are not written yet.
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

echo "== building the tests and benches with cuda"
cargo test --workspace "${features[@]}" --no-run
cargo bench "${features[@]}" --no-run
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
ADAPEFT_TEST_BACKENDS=cuda cargo test --workspace "${features[@]}"

echo "== the benches on CUDA (each prints its ratios after criterion's report)"
ADAPEFT_TEST_BACKENDS=cuda cargo bench "${features[@]}" --bench estimators --bench optim
echo "== done"
