#!/usr/bin/env bash
# Installs the Debian packages dpsgd needs to build, test and run its examples; a quick no-op when
# all are present. Everything comes from Debian's archive: nothing is fetched at build time.
# Usage: install-deps.sh          what the library, its tests and the main job need
#        install-deps.sh --all    also the optional components' dependencies (LibTorch: about 165
#                                 packages), OpenMPI (the dpsgd::mpi component) and the language-model
#                                 example's text (fortunes), for the test command that builds and
#                                 tests everything
set -euo pipefail

packages=(
  cmake g++ make                 # toolchain
  libeigen3-dev                  # Eigen 3.4: linear algebra
  libopenblas-openmp-dev         # OpenBLAS (OpenMP build): the BLAS behind Eigen's products
  libdnnl2                       # oneDNN: the float GEMMs when present (loaded at run time; docs/benchmarks.md)
  nlohmann-json3-dev             # JSON I/O
  libcli11-dev                   # command-line parsing of the examples and CLI
  zlib1g-dev                     # reading the gzip-compressed IDX files
  libfftw3-dev pkg-config        # FFTs of the PLD accountant
  libgtest-dev                   # GoogleTest
  libbenchmark-dev               # Google Benchmark
  clang-format                   # formatting check in CI
  dataset-fashion-mnist          # the Fashion-MNIST IDX files of the main example
)
case "${1:-}" in
  --all) packages+=(
    libtorch-dev  # LibTorch (CPU): the dpsgd::torch component
    fortunes      # fortune cookies: the text of the dp_lm example
    libopenmpi-dev openmpi-bin  # OpenMPI: the dpsgd::mpi component and its mpirun tests
    libblis4-openmp libxsmm-dev  # BLIS and libxsmm: the other GEMM libraries bench_gemm_backends compares
  ) ;;
  "") ;;
  *) echo "install-deps: unknown option $1 (use --all or nothing)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
