#!/usr/bin/env bash
# Sets up prebake in ./.venv on Debian/Ubuntu with Python 3.11+.
#   scripts/setup.sh          the server and the scikit-learn example
#   scripts/setup.sh --test   everything the test suite needs: every framework, peer servers' clients,
#                             podman for the image tests (installed with apt where we are root)
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[[ "${1:-}" == "--test" ]] && want_tests=1

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} == 0 ]] && return 0
  echo "setup: installing ${missing[*]} with apt-get"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: prebake needs Python 3.11 or newer ($python is $("$python" --version 2>&1)); set PYTHON=python3.11" >&2
  exit 2
fi
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
  apt_install "python3-venv" || { echo "setup: install python3-venv first" >&2; exit 2; }
fi

[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
if [[ $want_tests == 1 ]]; then
  # PyPI's torch is a multi-GB CUDA build; use the CPU wheel where the machine has one (PIP_FIND_LINKS).
  # First, so that the test extras' sentence-transformers (which needs torch) finds it installed.
  if .venv/bin/python -m pip download -q --no-deps --no-index -d /tmp/prebake-torch-probe torch==2.13.0 >/dev/null 2>&1; then
    "${pip[@]}" torch==2.13.0
  else
    echo "setup: no local CPU torch wheel found; torch tests will skip (pip install torch from the CPU index to run them)"
  fi
  "${pip[@]}" -e '.[test,grpc,schema,frameworks,mlflow]'
  apt_install wrk || true
  # Azurite, the Azure Storage emulator, for the storage tests: from npm into a folder of this checkout.
  if command -v npm >/dev/null; then
    [[ -x .tools/azurite/node_modules/.bin/azurite-blob ]] ||
      npm install --silent --no-audit --no-fund --prefix .tools/azurite azurite@3.35.0 >/dev/null ||
      echo "setup: npm could not install azurite; the Azure storage tests will skip (fail in CI)"
  else
    echo "setup: npm not found; the Azure storage tests will skip (apt-get install nodejs npm)"
  fi
  if [[ -x scripts/install-podman.sh ]]; then scripts/install-podman.sh || echo "setup: podman not installed; image tests will skip"; fi
  # The image tests start their own dockerd (Debian's docker.io, BuildKit built into its client) and a TLS
  # registry with basic auth (docker-registry, the CNCF distribution registry); nothing is started here.
  apt_install docker.io docker-registry || echo "setup: docker.io / docker-registry not installed; docker and registry tests will skip"
else
  "${pip[@]}" -e '.[sklearn]'
fi
echo "setup: ready ($(.venv/bin/prebake --version))"
