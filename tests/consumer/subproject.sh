#!/usr/bin/env bash
# segloss as a sub-project, as the README shows it: an outside project that add_subdirectory()s
# the source tree and links segloss::segloss must configure and generate. Configure only: a build
# would compile the whole library a second time. (The export() of the install rules stood outside
# them and failed here, a new user's report.)
set -euo pipefail
source=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/app"
cat > "$tmp/app/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(subproject_app CXX)
add_subdirectory("$source" segloss)
add_executable(app app.cpp)
target_link_libraries(app PRIVATE segloss::segloss)
CMAKE
echo 'int main() { return 0; }' > "$tmp/app/app.cpp"
cmake -S "$tmp/app" -B "$tmp/build" -DSEGLOSS_CUDA=OFF > "$tmp/configure.log" 2>&1 || {
  cat "$tmp/configure.log"
  exit 1
}
echo "segloss configures as a sub-project"
