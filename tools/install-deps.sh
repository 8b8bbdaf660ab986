#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages procpool needs to build and test, only
# those missing (idempotent). Run as root, or with sudo available.
#   tools/install-deps.sh           build and test
#   tools/install-deps.sh --bench   also what the benchmark suite compares
#                                   against and plots with: Python 3 with
#                                   loky (python3-joblib), and gnuplot
#   tools/install-deps.sh --fuzz    also clang and its libFuzzer, ASan and
#                                   UBSan runtimes (libclang-rt-14-dev, only
#                                   recommended by clang), for tools/fuzz.sh
#   tools/install-deps.sh --checks  also clang-format and clang-tidy, for the
#                                   format-check and tidy-check
#                                   targets
#   tools/install-deps.sh --coverage
#                                   also gcovr, for the coverage target of a
#                                   -DPROCPOOL_COVERAGE=ON build
set -euo pipefail
# Open MPI (libopenmpi-dev, openmpi-bin) for procpool::mpi's MpiPool; a
# build without it still works (PROCPOOL_WITH_MPI is on only when found).
packages=(g++ cmake make pkg-config libboost-dev libcereal-dev doctest-dev libseccomp-dev libopenmpi-dev openmpi-bin)
case "${1:-}" in
  "") ;;
  --bench) packages+=(python3 python3-joblib gnuplot-nox) ;;
  --fuzz) packages+=(clang libclang-rt-14-dev) ;;
  --checks) packages+=(clang-format clang-tidy) ;;
  --coverage) packages+=(gcovr) ;;
  *) echo "usage: $0 [--bench | --fuzz | --checks | --coverage]" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "procpool: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
