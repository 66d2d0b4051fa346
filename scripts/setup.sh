#!/usr/bin/env bash
# Set up perovdefect in ./.venv on a fresh machine.
#  - as root with apt-get: installs the system libraries GPAW builds against (libxc, OpenBLAS,
#    OpenMPI, FFTW, ScaLAPACK), Debian's quantum-espresso (pw.x) and chromium (for the report's
#    browser test);
#  - otherwise says what to install, and installs without GPAW if its libraries are missing.
# Environment: PYTHON (default python3), PEROVDEFECT_GPAW=0 to skip GPAW, PEROVDEFECT_QE=0 to
#              skip Quantum ESPRESSO, PEROVDEFECT_CHROMIUM=0 to skip chromium,
#              PEROVDEFECT_EXTRAS (default: qe,test,efnv,shakenbreak).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
GPAW=${PEROVDEFECT_GPAW:-1}
APT_PKGS=""
[ "$GPAW" = 1 ] && APT_PKGS="libxc-dev libopenblas-dev libopenmpi-dev openmpi-bin libfftw3-dev libscalapack-openmpi-dev"
[ "${PEROVDEFECT_QE:-1}" = 1 ] && APT_PKGS="$APT_PKGS quantum-espresso"
[ "${PEROVDEFECT_CHROMIUM:-1}" = 1 ] && APT_PKGS="$APT_PKGS chromium"

missing=""
if command -v dpkg >/dev/null 2>&1; then
  for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get install$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: missing system packages:$missing"
    echo "       install them (e.g. sudo apt-get install$missing), or rerun with"
    echo "       PEROVDEFECT_GPAW=0 to set up without GPAW (its tests are then skipped)"
  fi
fi

extras=${PEROVDEFECT_EXTRAS:-qe,test,efnv,shakenbreak}
if [ "$GPAW" = 1 ]; then
  if [ -e /usr/include/xc.h ] && command -v mpicc >/dev/null 2>&1; then
    extras="gpaw,$extras"
  else
    echo "setup: libxc headers or mpicc not found: installing without GPAW"
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
echo "setup: pip install -e .[$extras] (GPAW builds from source in about a minute)"
.venv/bin/python -m pip install -q -e ".[$extras]"
.venv/bin/python -c "import perovdefect; print('setup: perovdefect', perovdefect.__version__, 'ready in .venv')"
