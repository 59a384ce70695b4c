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

# Configures and builds build/ (Release, tuned for this CPU: SEGLOSS_NATIVE measurably helps,
# see bench/RESULTS.md).
segloss_build() {
  cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DSEGLOSS_NATIVE=ON "$@"
  cmake --build "$root/build" -j "$(nproc)"
}
