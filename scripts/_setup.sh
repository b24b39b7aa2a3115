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

# The interpreters tried, newest first; RESTATE_PYTHON=/path/to/python overrides them.
PYTHON_CANDIDATES=(python3.13 python3.12 python3.11 python3)

is_python_311() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
  local candidate
  if [[ -n "${RESTATE_PYTHON:-}" ]]; then
    is_python_311 "$RESTATE_PYTHON" || die "RESTATE_PYTHON=$RESTATE_PYTHON is not Python >= 3.11"
    echo "$RESTATE_PYTHON"
    return 0
  fi
  for candidate in "${PYTHON_CANDIDATES[@]}"; do
    if command -v "$candidate" >/dev/null 2>&1 && is_python_311 "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  die "$(no_python_message)"
}

no_python_message() {
  local found
  found="$(python3 --version 2>/dev/null || echo 'no python3')"
  echo "Python >= 3.11 not found (tried ${PYTHON_CANDIDATES[*]}; python3 is: $found)."
  if [[ "$(os_id)" == ubuntu ]]; then
    echo "  Ubuntu 22.04's python3 is 3.10: sudo apt-get install python3.11 python3.11-venv"
  else
    echo "  Install Python 3.11 or newer with your system's package manager or from python.org."
  fi
  echo "  Then rerun, or point RESTATE_PYTHON=/path/to/python3.11 at the one to use."
}

# The distribution's ID from /etc/os-release (debian, ubuntu, ...), or the kernel's name
# (darwin). RESTATE_OS_RELEASE names another file (the tests use it).
os_id() {
  local release="${RESTATE_OS_RELEASE:-/etc/os-release}"
  if [[ -r "$release" ]]; then
    (. "$release" && echo "${ID:-unknown}")
  else
    uname -s | tr '[:upper:]' '[:lower:]'
  fi
}

# Debian's python3 ships venv without ensurepip; it lives in the pythonX.Y-venv package.
venv_package_if_missing() {
  local py="$1"
  if [[ -x "$VENV_PY" ]] || "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    return 0
  fi
  "$py" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-venv")'
}

# The system programs ROLE needs: "run" (the example notebooks: redis-server for example 05)
# or "test" (also chromium, which only the browser tests drive).
needed_programs() {
  if [[ "$1" == test ]]; then
    echo redis-server chromium
  else
    echo redis-server
  fi
}

# The packages the test role needs to compile C (tests/test_compiled_build.py builds the
# opt-in mypyc core): a C compiler with the C library's headers, and Python's own headers.
build_packages_if_missing() {
  local py="$1"
  if ! command -v cc >/dev/null 2>&1 || [[ ! -e /usr/include/stdio.h ]]; then
    echo build-essential
  fi
  "$py" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    2>/dev/null && return 0
  "$py" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-dev")'
}

# Instructions for installing PROGRAMS where apt-get is not available.
by_hand_message() {
  local what="$1"
  echo "missing $what and apt-get is not available; install by hand, then rerun:"
  case "$(os_id)" in
    darwin) echo "  macOS with Homebrew: brew install redis (redis-server); chromium is only for" \
      "the browser tests, which look for /usr/bin/chromium and are skipped without it" ;;
    *) echo "  with your system's package manager: redis-server (often in a package named redis);" \
      "chromium (only the browser tests need it, at /usr/bin/chromium)" ;;
  esac
  echo "  a Python virtual environment (python3 -m venv) must work too; the test command also" \
    "needs a C compiler and Python's headers (build-essential, pythonX.Y-dev: the compiled build)"
}

ensure_system_packages() {
  local role="$1" py="$2" missing=() program
  for program in $(needed_programs "$role"); do
    command -v "$program" >/dev/null 2>&1 || missing+=("$program")
  done
  if [[ "$(os_id)" == ubuntu && " ${missing[*]} " == *" chromium "* ]]; then
    # Ubuntu packages chromium as a snap only: apt-get cannot install it
    echo "note: Ubuntu has chromium only as a snap (sudo snap install chromium, then link it to" \
      "/usr/bin/chromium); the browser tests are skipped without it"
    missing=("${missing[@]/chromium/}")
    read -r -a missing <<<"${missing[*]}"
  fi
  local venv_pkg
  venv_pkg="$(venv_package_if_missing "$py")"
  [[ -n "$venv_pkg" ]] && missing+=("$venv_pkg")
  if [[ "$role" == test ]]; then
    local build_pkg
    while read -r build_pkg; do
      [[ -n "$build_pkg" ]] && missing+=("$build_pkg")
    done < <(build_packages_if_missing "$py")
  fi
  if ((${#missing[@]} == 0)); then
    echo "system packages present ($(needed_programs "$role"))"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    if [[ "$role" == run && -z "$venv_pkg" ]]; then
      echo "warning: $(by_hand_message "${missing[*]}")" >&2
      echo "warning: continuing; example 05 (Redis) fails until redis-server is installed" >&2
      return 0
    fi
    die "$(by_hand_message "${missing[*]}")"
  fi
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

# The package extras ROLE installs: "run" what the notebooks need, "test" everything.
extras_for() {
  if [[ "$1" == test ]]; then echo dev; else echo lab,redis; fi
}

install_key() {
  {
    sha256sum "$REPO_ROOT/pyproject.toml"
    "$VENV_PY" -c 'import sys; print(sys.version)'
    echo "$1"
  } | sha256sum | cut -d' ' -f1
}

# True when .venv holds the package with EXTRAS (dev holds every other extra too).
is_installed() {
  local extras="$1" key
  [[ -f "$STAMP" ]] && "$VENV_PY" -c 'import restate, restate_nb' >/dev/null 2>&1 || return 1
  for key in "$(install_key "$extras")" "$(install_key dev)"; do
    grep -qx "$key" "$STAMP" && return 0
  done
  return 1
}

ensure_package_installed() {
  local extras
  extras="$(extras_for "$1")"
  if is_installed "$extras"; then
    echo "package up to date in .venv (pyproject.toml unchanged)"
    return 0
  fi
  echo "pip install -e '.[$extras]' into .venv"
  (cd "$REPO_ROOT" && "$VENV_PY" -m pip install --quiet --disable-pip-version-check -e ".[$extras]")
  echo "$(install_key "$extras")" >>"$STAMP"
}

# setup_all ROLE: what scripts/run ("run") or scripts/test ("test") needs; ends with .venv/bin
# on PATH.
setup_all() {
  local role="${1:-test}" py
  phase "system packages"
  py="$(find_python)"
  ensure_system_packages "$role" "$py"
  phase "python environment"
  ensure_venv "$py"
  ensure_package_installed "$role"
  export PATH="$VENV/bin:$PATH"
  export VIRTUAL_ENV="$VENV"
}
