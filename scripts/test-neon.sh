#!/usr/bin/env bash
# Builds the Rust test suite for aarch64-unknown-linux-gnu with Debian's
# rustc and runs it under qemu user emulation, so the NEON kernels are
# executed, not only compiled. Installs what it needs on Debian 12.
#
# The rustup toolchain here cannot fetch other targets, hence Debian's
# rustc-web with its arm64 standard library. Debian's qemu 7.2 hangs at the
# first thread that a dynamically linked aarch64 program starts, so the
# test binaries are linked statically.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null 2>&1; then
    echo "test-neon: installing the aarch64 toolchain and qemu-user"
    dpkg --add-architecture arm64
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
fi

export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export RUSTFLAGS="-C target-feature=+crt-static"
export RUSTDOCFLAGS="-C target-feature=+crt-static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# A separate target directory keeps Debian's rustc from invalidating the
# host build of the rustup toolchain.
export CARGO_TARGET_DIR=target/aarch64-debian
# Emulation runs about 20 times slower than native code, so the property
# suites run fewer cases and the exp sweep takes every 997th f32.
export PROPTEST_CASES="${PROPTEST_CASES:-12}"
export MLAK_EXP_SWEEP_STEP="${MLAK_EXP_SWEEP_STEP:-997}"

"$RUSTC" --version
cargo test --target aarch64-unknown-linux-gnu --workspace "$@"
