#!/usr/bin/env bash
# tests/install/run.sh SRCDIR WORKDIR [CMAKE_ARGS...]
#
# Configures evdb from SRCDIR into WORKDIR/build (no tests, no examples;
# CMAKE_ARGS too, such as the calling build's driver choices),
# installs it into WORKDIR/prefix, then builds consumer.c against the
# installed copy, four ways, and runs each binary:
#   a) cc + `pkg-config --cflags --libs evdb`              (shared library)
#   b) CMake find_package(evdb) + evdb::evdb               (shared library)
#   c) cc + libevdb.a + `pkg-config --static --libs evdb`  (static library)
#   d) CMake find_package(evdb) + evdb::evdb_static        (static library)
# then installs the same build again under a prefix chosen at install time
# (cmake --install --prefix, as packagers do) and repeats a) and b) there:
#   e) both must find that copy, not the configured prefix.
# Also checks that nothing installed points back into the build tree.
set -euo pipefail

die() {
    echo "install test: $*" >&2
    exit 1
}
step() {
    echo "== $*"
}

[ $# -ge 2 ] || die "usage: $0 SRCDIR WORKDIR [CMAKE_ARGS...]"
SRC=$(cd "$1" && pwd -P) || die "no source dir $1"
WORK_ARG=$2
shift 2
EXTRA_ARGS=("$@")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CC=${CC:-cc}
JOBS=${EVDB_JOBS:-2}

rm -rf -- "$WORK_ARG"
mkdir -p -- "$WORK_ARG"
WORK=$(cd "$WORK_ARG" && pwd -P)
PREFIX=$WORK/prefix
BUILD=$WORK/build

step "configure + build + install $SRC into $PREFIX"
cmake -S "$SRC" -B "$BUILD" \
    -DEVDB_BUILD_TESTS=OFF -DEVDB_BUILD_EXAMPLES=OFF -DEVDB_BUILD_BENCH=OFF \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" "${EXTRA_ARGS[@]}" >"$WORK/configure.log" 2>&1 ||
    {
        cat "$WORK/configure.log" >&2
        die "configure failed"
    }
cmake --build "$BUILD" -j"$JOBS" >"$WORK/build.log" 2>&1 ||
    {
        tail -n 40 "$WORK/build.log" >&2
        die "build failed"
    }
cmake --install "$BUILD" >"$WORK/install.log" 2>&1 ||
    {
        cat "$WORK/install.log" >&2
        die "install failed"
    }

# GNUInstallDirs picks lib/ or lib/<multiarch>/ (Debian, prefix not /usr):
# find where the .pc file actually went instead of guessing.
PC_FILE=$(find "$PREFIX" -path '*/pkgconfig/evdb.pc' | head -n 1)
[ -n "$PC_FILE" ] || die "no pkgconfig/evdb.pc under $PREFIX"
PC_DIR=$(dirname "$PC_FILE")
LIB_DIR=$(dirname "$PC_DIR")
echo "libdir: ${LIB_DIR#"$PREFIX"/}"
for f in "$LIB_DIR/libevdb.so" "$LIB_DIR/libevdb.a" "$LIB_DIR/cmake/evdb/evdbConfig.cmake" \
    "$PREFIX/include/evdb.h" "$PREFIX/include/evdb/version.h" "$PREFIX/include/evdb/features.h"; do
    [ -e "$f" ] || die "not installed: ${f#"$PREFIX"/}"
done
# The test kit: the fault proxy and the throwaway-server script.
for t in evdb-faultproxy evdb-testdb; do
    [ -x "$PREFIX/bin/$t" ] || die "not installed: bin/$t"
    "$PREFIX/bin/$t" --help >/dev/null || die "bin/$t --help failed"
done
# The man pages, when the build had scdoc to make them.
if command -v scdoc >/dev/null 2>&1; then
    for m in man3/evdb.3 man1/evdb-testdb.1 man1/evdb-faultproxy.1; do
        [ -s "$PREFIX/share/man/$m" ] || die "not installed: share/man/$m"
    done
    if command -v man >/dev/null 2>&1; then
        page=$(man -l "$PREFIX/share/man/man3/evdb.3" 2>/dev/null || true)
        grep -qF "THE ASYNCIO MAP" <<<"$page" || die "share/man/man3/evdb.3 does not render"
    fi
fi
# (WORKDIR may lie inside SRCDIR, so mentions of the prefix itself are fine.)
while IFS= read -r f; do
    if sed "s|$PREFIX||g" "$f" | grep -qF -e "$BUILD" -e "$SRC/"; then
        die "installed file ${f#"$PREFIX"/} refers to the build or source tree"
    fi
done < <(grep -rIlF -e "$BUILD" -e "$SRC/" "$PREFIX" || true)
# The library must export only the public evdb_ API.
if command -v nm >/dev/null 2>&1; then
    bad=$(nm -D --defined-only "$LIB_DIR/libevdb.so" | awk '$2 ~ /^[TDBR]$/ {print $3}' |
        grep -v -e '^evdb_[a-z]' -e '^_init$' -e '^_fini$' || true)
    [ -z "$bad" ] || die "libevdb.so exports non-public symbols: $(echo "$bad" | head -n 5 | tr '\n' ' ')"
fi

export PKG_CONFIG_PATH=$PC_DIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
run_consumer() { # label binary
    local out
    out=$(LD_LIBRARY_PATH=$LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$2") ||
        die "$1: consumer failed: $out"
    echo "$1: $out"
}

step "a) pkg-config, shared"
read -r -a pc_flags <<<"$(pkg-config --cflags --libs evdb)"
"$CC" -Wall -Wextra -Werror -o "$WORK/consumer-pc" "$HERE/consumer.c" "${pc_flags[@]}"
run_consumer "pkg-config shared" "$WORK/consumer-pc"
# ldd's output is captured first: `ldd | grep -q` under pipefail fails
# whenever grep exits before ldd has written everything (SIGPIPE).
deps=$(ldd "$WORK/consumer-pc" || true)
grep -qF "$LIB_DIR/libevdb.so" <<<"$deps" ||
    grep -qF "$LIB_DIR/libevdb.so" <<<"$(LD_LIBRARY_PATH=$LIB_DIR ldd "$WORK/consumer-pc")" ||
    die "consumer-pc does not load the installed libevdb.so"

step "b) find_package, evdb::evdb"
cmake_consumer() { # label builddir extra-cmake-args...
    local label=$1 dir=$2
    shift 2
    if ! { cmake -S "$HERE" -B "$dir" -DCMAKE_PREFIX_PATH="${CONSUMER_PREFIX:-$PREFIX}" "$@" &&
        cmake --build "$dir"; } >"$dir.log" 2>&1; then
        cat "$dir.log" >&2
        die "$label: consumer failed to build"
    fi
    run_consumer "$label" "$dir/consumer"
}
cmake_consumer "find_package shared" "$WORK/consumer-cmake"

step "c) pkg-config --static, libevdb.a"
# Not `pkg-config --static --libs evdb`: that also pulls in the private
# libraries of libpq, and Debian's libpq.pc names some that are not
# installed (-lpgcommon -lpgport). evdb's own part is what is tested here:
# its Libs, its Libs.private, and the Libs of its Requires.private modules.
read -r -a pc_cflags <<<"$(pkg-config --cflags evdb)"
read -r -a pc_libs <<<"$(pkg-config --libs evdb)"
read -r -a pc_private <<<"$(sed -n 's/^Libs\.private:[[:space:]]*//p' "$PC_FILE")"
read -r -a pc_requires <<<"$(pkg-config --print-requires-private evdb | awk '{print $1}' | tr '\n' ' ')"
static_libs=()
for f in "${pc_libs[@]}" "${pc_private[@]}"; do
    [ "$f" = -levdb ] || static_libs+=("$f")
done
if [ "${#pc_requires[@]}" -gt 0 ]; then
    read -r -a req_libs <<<"$(pkg-config --libs "${pc_requires[@]}")"
    static_libs+=("${req_libs[@]}")
fi
"$CC" -Wall -Wextra -Werror -DEVDB_STATIC -o "$WORK/consumer-pc-static" "$HERE/consumer.c" \
    "${pc_cflags[@]}" "$LIB_DIR/libevdb.a" "${static_libs[@]}"
run_consumer "pkg-config static" "$WORK/consumer-pc-static"

step "d) find_package, evdb::evdb_static"
cmake_consumer "find_package static" "$WORK/consumer-cmake-static" -DCONSUMER_STATIC=ON

step "e) prefix chosen at install time"
MOVED=$WORK/moved
cmake --install "$BUILD" --prefix "$MOVED" >"$WORK/install-moved.log" 2>&1 ||
    {
        cat "$WORK/install-moved.log" >&2
        die "install --prefix failed"
    }
MOVED_PC=$(find "$MOVED" -path '*/pkgconfig/evdb.pc' | head -n 1)
[ -n "$MOVED_PC" ] || die "no pkgconfig/evdb.pc under $MOVED"
LIB_DIR=$(dirname "$(dirname "$MOVED_PC")")
# Only the moved copy is visible from here on: the first one is renamed.
mv "$PREFIX" "$PREFIX.hidden"
PKG_CONFIG_PATH=$(dirname "$MOVED_PC")
export PKG_CONFIG_PATH
inc=$(pkg-config --variable=includedir evdb)
[ "$(cd "$inc" && pwd -P)" = "$MOVED/include" ] ||
    die "evdb.pc installed with --prefix $MOVED says includedir=$inc"
read -r -a pc_flags <<<"$(pkg-config --cflags --libs evdb)"
"$CC" -Wall -Wextra -Werror -o "$WORK/consumer-moved" "$HERE/consumer.c" "${pc_flags[@]}"
run_consumer "pkg-config, prefix at install time" "$WORK/consumer-moved"
CONSUMER_PREFIX=$MOVED cmake_consumer "find_package, prefix at install time" "$WORK/consumer-cmake-moved"
mv "$PREFIX.hidden" "$PREFIX"

echo "install test: OK"
