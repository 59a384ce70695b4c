#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then configures, builds and runs the
# consumer project against it with find_package(segloss). $3: the compiler flags of the build
# (a sanitizer build's library needs the sanitizer runtime in the consumer too).
set -euo pipefail
build=$1 source=$2 flags=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" > /dev/null
cmake -S "$source/tests/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_CXX_FLAGS="$flags" > /dev/null
cmake --build "$tmp/consumer" > /dev/null
"$tmp/consumer/consumer"

# The same program built with plain g++ and pkg-config.
PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib64/pkgconfig" \
  pkg-config --exists segloss
g++ $flags "$source/tests/consumer/main.cpp" -o "$tmp/consumer-pc" \
  $(PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib64/pkgconfig" pkg-config --cflags --libs segloss)
"$tmp/consumer-pc"
