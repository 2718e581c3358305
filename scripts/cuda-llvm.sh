#!/usr/bin/env bash
# LLVM 23 for the `cuda` feature's build, from the Python package index through pip.
#
# burn's `cuda` feature pulls in cubecl-cuda, which always compiles cubecl-llvm (its LLVM-to-PTX
# kernel compiler): C++ shims against LLVM 23 headers, LLVM linked statically. Its build
# dependency tracel-llvm-bundler downloads an LLVM archive from its own server unless its
# install folder (`$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4`) already holds the file
# `.tracel-llvm-installed`; it then only runs `bin/llvm-config` there. This script fills that
# folder from two wheels of the Python package index, fetched with pip by name and pinned
# version and checked by sha256 (LLVM 23.1.1 as static libraries, headers and `llvm-config`:
# the X86 backend in the first, NVPTX among the others in the second; 58 + 31 MB, about 400
# MB unpacked), then prints the `XDG_DATA_HOME` to build with:
#
#     env=$(scripts/cuda-llvm.sh) && eval "$env"   # idempotent: a fraction of a second once done
#     cargo clippy --workspace --all-targets --features adapeft/cuda,adapeft-testing/cuda
#
# (Not `eval "$(scripts/cuda-llvm.sh)"` alone: a failure would then go unnoticed, and the
# build would try the bundler's download.)
#
# Everything lives under `target/cuda-llvm/` (or `$ADAPEFT_CUDA_LLVM_DIR`). Linux x86_64 only
# (the wheels' platform). The CUDA toolkit is not needed to build: cudarc opens the driver's
# libraries when a program runs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# Absolute: the links below and XDG_DATA_HOME (which must be absolute) point into it.
dir=$(realpath -m "${ADAPEFT_CUDA_LLVM_DIR:-$root/target/cuda-llvm}")
# tracel-llvm-bundler 23.1.0-4's folder name (its `TRACEL_LLVM_FULL_VERSION`).
bundler_dir=tracel/tracel-llvm-23.1.0-4
wheels=(
  "mlc-llvm-static 23.1.1.post0 mlc_llvm_static-23.1.1.post0-py3-none-manylinux_2_28_x86_64.whl dcfec888abfaa418be77d41af585805f31463584cf9c90582992c00f392c1ac5"
  "mlc-llvm-static-extra-targets 23.1.1.post0 mlc_llvm_static_extra_targets-23.1.1.post0-py3-none-manylinux_2_28_x86_64.whl c36e834d9a4e9cf9759f27fece65711ece7a2fc2b5a96dbb15d66f5e9e787929"
)

fail() {
  echo "cuda-llvm: $*" >&2
  exit 1
}

install="$dir/data/$bundler_dir"
# The pins the install was made from: another pin installs again.
pins=$(printf '%s\n' "${wheels[@]}")
if [ -f "$install/.tracel-llvm-installed" ] && [ "$(cat "$dir/pins" 2>/dev/null)" = "$pins" ] &&
  "$install/bin/llvm-config" --version 2>/dev/null | grep -q '^23\.'; then
  echo "export XDG_DATA_HOME='$dir/data'"
  exit 0
fi

[ "$(uname -s)/$(uname -m)" = "Linux/x86_64" ] ||
  fail "the LLVM wheels are for Linux x86_64; this is $(uname -s)/$(uname -m)"
command -v python3 >/dev/null || fail "python3 is missing (Debian: apt-get install python3)"
python3 -m pip --version >/dev/null 2>&1 ||
  fail "pip is missing (Debian: apt-get install python3-pip)"

mkdir -p "$dir/wheels"
for wheel in "${wheels[@]}"; do
  read -r name version file sha <<<"$wheel"
  path="$dir/wheels/$file"
  if [ ! -f "$path" ] || [ "$(sha256sum "$path" | cut -d' ' -f1)" != "$sha" ]; then
    rm -f "$path"
    echo "cuda-llvm: fetching $name $version with pip" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --dest "$dir/wheels" "$name==$version" >&2 ||
      fail "pip could not fetch $name==$version (is the package index reachable? the wheel needs glibc 2.28 or newer)"
    [ -f "$path" ] || fail "pip fetched $name==$version, but not as $file"
  fi
  got=$(sha256sum "$path" | cut -d' ' -f1)
  [ "$got" = "$sha" ] || fail "$file has sha256 $got, expected $sha"
done

# Both wheels unpack into the same `mlc_llvm_static/static/` tree (the second adds libraries).
rm -rf "$dir/unpacked" "$dir/data"
mkdir -p "$dir/unpacked"
for wheel in "${wheels[@]}"; do
  read -r _ _ file _ <<<"$wheel"
  python3 -m zipfile -e "$dir/wheels/$file" "$dir/unpacked" ||
    fail "cannot unpack $file"
done
static="$dir/unpacked/mlc_llvm_static/static"
# Zip archives do not keep the executable bit.
chmod +x "$static"/bin/*
"$static/bin/llvm-config" --version | grep -q '^23\.' ||
  fail "$static/bin/llvm-config is not LLVM 23"

mkdir -p "$install"
for part in bin include lib share; do
  [ -e "$static/$part" ] || fail "the wheels have no $part/ folder"
  ln -s "$static/$part" "$install/$part"
done
"$install/bin/llvm-config" --version | grep -q '^23\.' ||
  fail "$install/bin/llvm-config does not run"
touch "$install/.tracel-llvm-installed"
printf '%s\n' "$pins" >"$dir/pins"
echo "cuda-llvm: LLVM $("$install/bin/llvm-config" --version) ready in $install" >&2
echo "export XDG_DATA_HOME='$dir/data'"
