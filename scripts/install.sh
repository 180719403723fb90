#!/usr/bin/env bash
# Builds the release library and installs it under PREFIX: the shared and
# static libraries in lib/, the header in include/ and two pkg-config files
# in lib/pkgconfig/, so that C users compile and link with
#   cc prog.c $(pkg-config --cflags --libs mlak)
# and link the static library with
#   cc prog.c $(pkg-config --cflags --libs mlak-static)
set -euo pipefail
prefix="${1:?usage: scripts/install.sh PREFIX}"
cd "$(dirname "$0")/.."
cargo build --release --lib --quiet
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 644 target/release/libmlak.so target/release/libmlak.a "$prefix/lib/"
install -m 644 include/mlak.h "$prefix/include/"
# Libs.private lists the system libraries that the Rust standard library in
# the static archive needs, as printed by
# `cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs`.
cat > "$prefix/lib/pkgconfig/mlak.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: mlak
Description: SIMD CPU kernels for transformer building blocks
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lmlak
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
PC
# The archive by path, so the linker cannot pick libmlak.so beside it.
cat > "$prefix/lib/pkgconfig/mlak-static.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: mlak-static
Description: SIMD CPU kernels for transformer building blocks, static library
Version: $version
Cflags: -I\${includedir}
Libs: \${libdir}/libmlak.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
PC
echo "installed mlak $version under $prefix"
