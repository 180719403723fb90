#!/usr/bin/env bash
# Runs every test: the Rust suites natively (scalar, AVX2 and AVX-512 paths
# as far as this CPU has them), the header check, the C, C++ and Python FFI
# suites, and the Rust suites for aarch64 under qemu (NEON). Installs what
# it needs on a fresh Debian 12 machine with the rustup toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pkg-config >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q pkg-config
fi

echo "== Rust suites, native ($(uname -m))"
cargo test --workspace

# Debug builds fill every pooled scratch with NaN, so only a release build
# reads scratch contents that an earlier call left, such as the tags of the
# prefill key cache.
echo "== Attention suite, release build"
cargo test --release --test attention

echo "== C, C++ and Python FFI suites"
bash ffi-tests/run.sh

echo "== Rust suites, aarch64 NEON under qemu"
bash scripts/test-neon.sh
