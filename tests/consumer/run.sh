#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs programs against it:
#   C++ with find_package(segloss), C++ with g++ and pkg-config (segloss.pc), the headers
#   under strict warnings as errors (strict_warnings.cpp),
#   C with find_package(segloss) in a C-only project, C with cc and pkg-config (segloss.pc, and
#   segloss_c.pc); the C programs must reproduce the C++ program's soft Dice value.
# $3: the compiler flags of the build (a sanitizer build's library needs the sanitizer runtime
# in the consumer too).
set -euo pipefail
build=$1 source=$2 flags=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" > /dev/null
cmake -S "$source/tests/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_CXX_FLAGS="$flags" > /dev/null
cmake --build "$tmp/consumer" > /dev/null
"$tmp/consumer/consumer" | tee "$tmp/consumer.out"
dice=$(sed -n 's/^soft_dice=//p' "$tmp/consumer.out")
test -n "$dice"

# The same program built with plain g++ and pkg-config.
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib64/pkgconfig"
pkg-config --exists segloss
g++ $flags "$source/tests/consumer/main.cpp" -o "$tmp/consumer-pc" \
  $(pkg-config --cflags --libs segloss)
"$tmp/consumer-pc" > /dev/null

# The headers under a consumer's strict warnings, as errors (strict_warnings.cpp instantiates
# every member of the class templates a consumer reaches).
strict="-Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wold-style-cast"
strict="$strict -Wdouble-promotion -Werror"
g++ -std=c++17 $flags $strict "$source/tests/consumer/strict_warnings.cpp" -o "$tmp/strict" \
  $(pkg-config --cflags --libs segloss)
"$tmp/strict"

# The C API: a C-only CMake project with find_package(segloss) and segloss::segloss_c.
cmake -S "$source/tests/consumer/c" -B "$tmp/consumer-c" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_C_FLAGS="$flags" > /dev/null
cmake --build "$tmp/consumer-c" > /dev/null
"$tmp/consumer-c/consumer_c" "$dice"

# The C API with plain cc and pkg-config, through segloss.pc and through segloss_c.pc.
for pc in segloss segloss_c; do
  cc -std=c99 -Wall -Werror $flags "$source/tests/consumer/main.c" -o "$tmp/consumer-c-$pc" \
    $(pkg-config --cflags --libs $pc) -lm
  "$tmp/consumer-c-$pc" "$dice"
done

# A C program that packs enums (-fshort-enums) would lay the option structs out otherwise than
# the library: the installed header must refuse to compile, naming its check.
printf '#include <segloss/capi/segloss.h>\nint main(void) { return 0; }\n' > "$tmp/short_enums.c"
if cc -std=c99 -fshort-enums -fsyntax-only $(pkg-config --cflags segloss_c) "$tmp/short_enums.c" \
  2> "$tmp/short_enums.err"; then
  echo "segloss.h compiled with -fshort-enums" >&2
  exit 1
fi
grep -q segloss_enums_must_be_int_sized "$tmp/short_enums.err"
cc -std=c99 -Wall -Werror -fsyntax-only $(pkg-config --cflags segloss_c) "$tmp/short_enums.c"
