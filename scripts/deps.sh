# Sourced by the other scripts: installs the Debian packages segloss builds with, when missing.
# Needs root (as on a fresh Debian 12 machine); runs apt-get update only when it installs.
segloss_install_deps() {
  local wanted=(cmake g++ make pkg-config libeigen3-dev doctest-dev libpng-dev openmpi-bin
                libopenmpi-dev "$@")
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "segloss: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# Configures and builds build/: the library in Release, tuned for this CPU (SEGLOSS_NATIVE
# measurably helps, see bench/RESULTS.md); the test code at -O0 (SEGLOSS_TEST_COMPILE_OPTIONS):
# optimizing the doctest files cost about 5 times their compile time (g++ -O3 on
# tests/test_capi.cpp: 112 s against 19 s), and the tests spend their run time in the library.
segloss_build() {
  cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSEGLOSS_NATIVE=ON \
    -DSEGLOSS_TEST_COMPILE_OPTIONS=-O0 "$@"
  cmake --build "$root/build" -j "$(nproc)"
}
