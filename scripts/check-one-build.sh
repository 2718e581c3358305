#!/usr/bin/env bash
# Checks that the README's commands share one build: after `cargo test --workspace`, each
# command below compiles only this workspace's own crates, never burn, cubecl or any other
# third-party crate a second time.
#
# Cargo resolves features per command (workspace-wide unification is not stable): a command
# that selects one package does not see the other members' dependencies and dev-dependencies,
# and a crate built with other features, or shared differently between procedural macros and
# normal code, is compiled again, with everything above it. `crates/adapeft-testing` pins the
# whole workspace's feature set for every build (see its manifest); this script proves it.
#
# How: cargo's unit graph (the plan of a build: every unit with its package, features, profile
# and dependencies; printing it compiles nothing) of `cargo test --workspace --no-run` is the
# reference. Every third-party unit of each command's graph must be in the reference with the
# same features, profile settings (the profile's name aside, which cargo does not hash: `test`
# and `dev` set the same options here) and, recursively, the same dependencies. Takes seconds.
# The unit graph is an unstable cargo option, unlocked on a stable toolchain by RUSTC_BOOTSTRAP
# for these plan-only commands.
#
# Not checked: `cargo run -p adapeft-knapsack --example knapsack_front`, which builds
# without burn on purpose (a few small crates).
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

plan() {
  local out=$1
  shift
  RUSTC_BOOTSTRAP=1 cargo "$@" --unit-graph -Z unstable-options >"$out"
}

plan "$tmp/reference.json" test --workspace --no-run

commands=(
  "build --workspace --examples --bins"
  "build -p adapeft-studies --bin digits"
  "build -p adapeft-studies --bin minilm"
  "build -p adapeft-bert --example minilm_wordnet"
)
for example in examples/*.rs; do
  commands+=("build --example $(basename "$example" .rs)")
done

status=0
for i in "${!commands[@]}"; do
  # shellcheck disable=SC2086 # the command is split into cargo's arguments on purpose
  plan "$tmp/$i.json" ${commands[$i]}
  python3 - "$tmp/reference.json" "$tmp/$i.json" "cargo ${commands[$i]}" <<'PY' || status=1
import json
import sys

reference, candidate, label = sys.argv[1:4]


def identities(path):
    """Each unit's identity: its own settings and, recursively, its dependencies'."""
    units = json.load(open(path))["units"]
    memo = {}

    def own(u):
        profile = {k: v for k, v in u["profile"].items() if k != "name"}
        return (u["pkg_id"], u["target"]["name"], tuple(u["target"]["kind"]), u["mode"],
                tuple(u["features"]), json.dumps(profile, sort_keys=True),
                json.dumps(u["platform"]))

    def identity(i):
        if i not in memo:
            u = units[i]
            deps = sorted((d["extern_crate_name"], identity(d["index"]))
                          for d in u["dependencies"])
            memo[i] = hash((own(u), tuple(deps)))
        return memo[i]

    return units, [identity(i) for i in range(len(units))], {own(u) for u in units}, own


ref_units, ref_ids, ref_own, own = identities(reference)
units, ids, _, _ = identities(candidate)
known = set(ref_ids)
ours = lambda u: u["pkg_id"].startswith("path+file://")  # this workspace's crates
third_party = [(u, i) for u, i in zip(units, ids) if not ours(u)]
again = [u for u, i in third_party if i not in known]
if not again:
    print(f"ok: {label}: all {len(third_party)} third-party units are shared with "
          "`cargo test --workspace`")
    sys.exit(0)
print(f"FAIL: {label} would compile {len(again)} third-party units again:")
for u in again:
    if own(u) in ref_own:
        continue  # only its dependencies differ: listed on their own
    name = u["pkg_id"].split("#")[-1]
    print(f"  {name} ({u['mode']}): features {u['features']}, "
          f"debuginfo {u['profile']['debuginfo']}")
    seen = set()
    for r in ref_units:
        if r["pkg_id"] == u["pkg_id"] and r["mode"] == u["mode"]:
            line = (f"      the test build has features {r['features']}, "
                    f"debuginfo {r['profile']['debuginfo']}")
            if line not in seen:
                seen.add(line)
                print(line)
print("  (pin the test build's features in crates/adapeft-testing/Cargo.toml; a crate that"
      " differs only in debuginfo is a build-time dependency here and a normal one in the"
      " test build: pin it as a normal dependency)")
sys.exit(1)
PY
done
exit $status
