#!/usr/bin/env bash
# The one change dgcolor carries inside candle: candle-core 0.11.1 vendored in vendor/candle-core
# (used through [patch.crates-io] in Cargo.toml) is the pristine crate from crates.io plus
# vendor/candle-core.patch, nothing else. See vendor/README.md for what the patch does and
# its upstream pull request.
#
#   scripts/candle-patch.sh check        # vendor/candle-core == pristine + patch (default)
#   scripts/candle-patch.sh apply        # re-create vendor/candle-core from pristine + patch
#   scripts/candle-patch.sh diff         # after editing vendor/candle-core: rewrite the patch
#   scripts/candle-patch.sh pristine DIR # the pristine crate source into DIR
#   scripts/candle-patch.sh gradcheck    # gradients with and without the patch, bit for bit
#   scripts/candle-patch.sh build-pristine ARGS...  # `cargo build ARGS` against pristine candle
#
# The pristine source is the .crate file from cargo's download cache, checked against its
# crates.io SHA-256; if it is not there, cargo downloads it (a throw-away manifest that
# depends on candle-core =0.11.1, then `cargo fetch`).
#
# build-pristine and gradcheck build against the pristine crate by overriding the manifest's
# [patch] from the command line (`cargo --config patch.crates-io.candle-core.path=...`: a
# patch given as configuration takes precedence over the one in Cargo.toml), into the same
# target directory: the two candle-core builds have different package ids, so neither evicts
# the other, and only candle-core and the crates above it are compiled twice. The pristine
# copy lives in vendor/.pristine (git-ignored, outside the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=0.11.1
SHA256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
VENDORED=vendor/candle-core
PATCH=vendor/candle-core.patch
PRISTINE=vendor/.pristine/candle-core
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}

die() { echo "candle-patch.sh: $*" >&2; exit 1; }

# The verified .crate file of candle-core $VERSION, downloaded by cargo if needed.
crate_file() {
  local f
  for f in "$CARGO_HOME"/registry/cache/*/candle-core-$VERSION.crate; do
    if [[ -f $f ]] && echo "$SHA256  $f" | sha256sum --check --status; then echo "$f"; return; fi
  done
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/src" && : > "$tmp/src/lib.rs"
  cat > "$tmp/Cargo.toml" <<TOML
[package]
name = "fetch-candle-core"
version = "0.0.0"
edition = "2021"
[dependencies]
candle-core = "=$VERSION"
TOML
  (cd "$tmp" && cargo fetch -q) >&2 || die "cargo could not download candle-core $VERSION"
  rm -rf "$tmp"
  for f in "$CARGO_HOME"/registry/cache/*/candle-core-$VERSION.crate; do
    if [[ -f $f ]] && echo "$SHA256  $f" | sha256sum --check --status; then echo "$f"; return; fi
  done
  die "no candle-core-$VERSION.crate with SHA-256 $SHA256 in $CARGO_HOME/registry/cache"
}

# pristine DIR: the published crate's files in DIR (created; must not exist).
pristine() {
  local dir=$1 tmp
  [[ ! -e $dir ]] || die "$dir exists"
  tmp=$(mktemp -d)
  tar -xzf "$(crate_file)" -C "$tmp"
  mkdir -p "$(dirname "$dir")"
  mv "$tmp/candle-core-$VERSION" "$dir"
  rmdir "$tmp"
}

# patched DIR: pristine + the patch in DIR.
patched() {
  pristine "$1"
  (cd "$1" && patch -p1 --quiet --forward --no-backup-if-mismatch) < "$PATCH" ||
    die "$PATCH does not apply to candle-core $VERSION"
}

# The pristine copy the pristine builds use, refreshed when missing or touched.
ensure_pristine() {
  if [[ -d $PRISTINE ]]; then
    local tmp
    tmp=$(mktemp -d)
    pristine "$tmp/c"
    if diff -r -q "$tmp/c" "$PRISTINE" >/dev/null; then rm -rf "$tmp"; return; fi
    rm -rf "$PRISTINE" "$tmp"
  fi
  pristine "$PRISTINE"
}

cmd=${1:-check}
case $cmd in
  check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    patched "$tmp/c"
    if ! diff -r -u "$tmp/c" "$VENDORED"; then
      die "$VENDORED is not candle-core $VERSION + $PATCH (scripts/candle-patch.sh apply to reset it, diff to rewrite the patch)"
    fi
    echo "$VENDORED = candle-core $VERSION (crates.io, sha256 ${SHA256:0:12}...) + $PATCH ($(grep -c '^[-+][^-+]' "$PATCH") changed lines)"
    ;;
  apply)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    patched "$tmp/c"
    rm -rf "$VENDORED"
    mv "$tmp/c" "$VENDORED"
    echo "re-created $VENDORED from candle-core $VERSION + $PATCH"
    ;;
  diff)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    pristine "$tmp/a"
    cp -a "$VENDORED" "$tmp/b"
    # Paths a/... and b/..., no timestamps, so the file only changes with the code.
    (cd "$tmp" && LC_ALL=C diff -ruN a b || true) |
      sed -E -e '/^diff -ruN /d' -e 's/^(---|\+\+\+) ([^\t]*)\t.*/\1 \2/' > "$PATCH"
    echo "wrote $PATCH: $(grep -c '^[-+][^-+]' "$PATCH") changed lines in $(grep -c '^+++ ' "$PATCH") file(s)"
    ;;
  pristine)
    [[ $# == 2 ]] || die "usage: $0 pristine DIR"
    pristine "$2"
    ;;
  build-pristine)
    shift
    ensure_pristine
    cargo --config "patch.crates-io.candle-core.path=\"$ROOT/$PRISTINE\"" build "$@"
    ;;
  gradcheck)
    # grad_dump (crates/dgcolor-bench/tests/grad_dump.rs) built as `cargo test --workspace`
    # builds it (after CI's test run the patched one is up to date), once against the patched
    # and once against the pristine candle-core, in the same target directory; the dumps go
    # beside the copies of the two executables.
    target=${CARGO_TARGET_DIR:-$ROOT/target}
    out=$target/gradcheck
    mkdir -p "$out"
    # build_grad_dump [CARGO_OPTIONS...]: builds it and prints the executable's path.
    build_grad_dump() {
      cargo "$@" test --workspace --release --test grad_dump --no-run --message-format=json |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "grad_dump" and m.get("executable"):
        print(m["executable"])'
    }
    exe=$(build_grad_dump)
    [[ -x $exe ]] || die "could not build grad_dump"
    cp "$exe" "$out/grad_dump-patched"
    ensure_pristine
    exe=$(build_grad_dump --config "patch.crates-io.candle-core.path=\"$ROOT/$PRISTINE\"")
    [[ -x $exe ]] || die "could not build grad_dump against the pristine candle-core"
    cp "$exe" "$out/grad_dump-pristine"
    # The same thread count for both (the kernels' sums are fixed for a given count).
    export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
    "$out/grad_dump-patched" --out "$out/patched.bin"
    "$out/grad_dump-patched" --out "$out/patched-again.bin"
    "$out/grad_dump-pristine" --out "$out/pristine.bin"
    echo "run to run, patched build:"
    "$out/grad_dump-patched" --compare "$out/patched.bin" "$out/patched-again.bin" --strict
    echo "patched vs pristine candle-core:"
    "$out/grad_dump-patched" --compare "$out/patched.bin" "$out/pristine.bin" --patched-vs-pristine
    ;;
  *)
    die "unknown command '$cmd' (check, apply, diff, pristine DIR, build-pristine ARGS, gradcheck)"
    ;;
esac
