# shellcheck shell=bash
# Shared setup for scripts/test and scripts/run: system packages, .venv, the package install.
# Sourced, not executed. Every step is skipped when already done, so reruns are fast.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
VENV_PY="$VENV/bin/python"
STAMP="$VENV/.restate-install-stamp"

_phase_start=""
_phase_name=""

die() {
  echo "error: $*" >&2
  exit 1
}

# phase NAME: print the time the previous phase took, then announce NAME (empty NAME: just end).
phase() {
  local now="${EPOCHREALTIME/./}"
  if [[ -n "$_phase_name" ]]; then
    local ms=$(((now - _phase_start) / 1000))
    printf '== %s: %d.%d s\n' "$_phase_name" $((ms / 1000)) $((ms % 1000 / 100))
  fi
  _phase_name="${1:-}"
  _phase_start="$now"
  [[ -n "$_phase_name" ]] && echo "== $_phase_name ..."
  return 0
}

as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to install system packages: $*"
  fi
}

find_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      command -v "$candidate"
      return 0
    fi
  done
  die "Python >= 3.11 not found (tried python3.11, python3); install it first"
}

# Debian's python3 ships venv without ensurepip; it lives in the pythonX.Y-venv package.
venv_package_if_missing() {
  local py="$1"
  if [[ -x "$VENV_PY" ]] || "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    return 0
  fi
  "$py" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-venv")'
}

ensure_system_packages() {
  local py="$1" missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  local venv_pkg
  venv_pkg="$(venv_package_if_missing "$py")"
  [[ -n "$venv_pkg" ]] && missing+=("$venv_pkg")
  if ((${#missing[@]} == 0)); then
    echo "system packages present (redis-server, chromium)"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 \
    || die "missing ${missing[*]} and apt-get is not available; install them by hand"
  echo "installing with apt-get: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_venv() {
  local py="$1"
  if [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    2>/dev/null; then
    return 0
  fi
  echo "creating $VENV with $py"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
}

install_key() {
  {
    sha256sum "$REPO_ROOT/pyproject.toml"
    "$VENV_PY" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

ensure_package_installed() {
  local key
  key="$(install_key)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$key" ]] \
    && "$VENV_PY" -c 'import restate, restate_nb' >/dev/null 2>&1; then
    echo "package up to date in .venv (pyproject.toml unchanged)"
    return 0
  fi
  echo "pip install -e '.[dev]' into .venv"
  (cd "$REPO_ROOT" && "$VENV_PY" -m pip install --quiet --disable-pip-version-check -e '.[dev]')
  echo "$key" >"$STAMP"
}

# setup_all: everything both commands need; ends with .venv/bin on PATH.
setup_all() {
  local py
  phase "system packages"
  py="$(find_python)"
  ensure_system_packages "$py"
  phase "python environment"
  ensure_venv "$py"
  ensure_package_installed
  export PATH="$VENV/bin:$PATH"
  export VIRTUAL_ENV="$VENV"
}
