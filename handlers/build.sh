#!/usr/bin/env bash
# Builds the default handler modules (echo, chat) for wasm32-unknown-unknown and copies them
# to handlers/build/, where handlers/switchyard.toml expects them. Runnable from any directory.
#
#   handlers/build.sh            # release build; prints the module sizes
#
# Honours CARGO_TARGET_DIR (default: handlers/target). Extra arguments go to `cargo build`.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
target=wasm32-unknown-unknown
target_dir="${CARGO_TARGET_DIR:-$here/target}"

# The wasm target (idempotent; only touches the network when it is missing).
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
    fi
fi

# A 64 KiB stack instead of Rust's default 1 MiB: handlers are small, and a small initial
# memory is cheaper to reset between events (a fresh instance, or a reused one after its reset).
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:--C link-arg=-zstack-size=65536}"
cargo build \
    --manifest-path "$here/Cargo.toml" \
    --target "$target" \
    --target-dir "$target_dir" \
    --release \
    "$@"

mkdir -p "$here/build"
for module in echo chat; do
    cp "$target_dir/$target/release/$module.wasm" "$here/build/$module.wasm"
done

for module in echo chat; do
    printf '%-28s %8d bytes\n' "handlers/build/$module.wasm" "$(wc -c <"$here/build/$module.wasm")"
done
