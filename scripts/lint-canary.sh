#!/usr/bin/env bash
# Proves that the lint setting CI builds with works: with RUSTC_WORKSPACE_WRAPPER (clippy's
# driver) and CLIPPY_ARGS (`-D warnings`) as `.ci/run` exports them, a crate with one clippy
# lint (`len_zero`, a style lint, warn by default) must fail to compile, and the same crate
# without it must compile. Without this, a changed driver interface would let CI pass with
# no lints at all. Takes a second; compiles nothing of the workspace.
set -euo pipefail

driver=${RUSTC_WORKSPACE_WRAPPER:?set RUSTC_WORKSPACE_WRAPPER to clippy-driver first}
: "${CLIPPY_ARGS:?set CLIPPY_ARGS first}"
rustc=$(rustup which rustc 2>/dev/null || command -v rustc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/lint.rs" <<'RS'
pub fn empty(v: &[u8]) -> bool {
    v.len() == 0
}
RS
cat >"$tmp/clean.rs" <<'RS'
pub fn empty(v: &[u8]) -> bool {
    v.is_empty()
}
RS
# As cargo calls a wrapper: the wrapper, then rustc and its arguments.
compile() {
  "$driver" "$rustc" --edition 2024 --crate-type lib --emit metadata \
    --out-dir "$tmp" "$1" 2>"$tmp/log"
}
if compile "$tmp/lint.rs"; then
  echo "lint canary: clippy's driver let clippy::len_zero through; CI's lints are not running" >&2
  exit 1
fi
if ! grep -q "len_zero" "$tmp/log"; then
  echo "lint canary: the build failed, but not on clippy::len_zero:" >&2
  cat "$tmp/log" >&2
  exit 1
fi
if ! compile "$tmp/clean.rs"; then
  echo "lint canary: clippy's driver rejects a clean crate:" >&2
  cat "$tmp/log" >&2
  exit 1
fi
echo "lint canary: clippy's driver denies clippy::len_zero and passes a clean crate"
