#!/usr/bin/env bash
# photoclass from a fresh clone, in one step each (needs only Python >= 3.11 and pip):
#   ./run.sh demo [--out DIR]   set up, then run the offline demo (simulated Flickr -> train -> report)
#   ./run.sh test [PYTEST ARGS] set up, then lint and run the test suite
# Set-up (skipped when already done): a virtual environment in .venv with photoclass and its
# dev tools (PyTorch CPU, timm, ...), and, where apt-get is available as root, Debian's
# libjemalloc2 (about 2x faster CPU training here) and chromium (for the report's browser test).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${PHOTOCLASS_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

system_packages() {
  local wanted=("$@") missing=()
  command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || return 0
  for pkg in "${wanted[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null \
    || echo "warning: could not install ${missing[*]}; continuing without" >&2
}

python_packages() {
  if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    echo "setting up $VENV (PyTorch and friends: a few minutes the first time)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
    touch "$VENV/.installed"
  fi
}

case "${1:-}" in
  demo)
    shift
    system_packages libjemalloc2
    python_packages
    exec "$VENV/bin/photoclass" demo "$@"
    ;;
  test)
    shift
    system_packages libjemalloc2 chromium
    python_packages
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    exec "$VENV/bin/pytest" "$@"
    ;;
  *)
    echo "usage: ./run.sh demo [--out DIR] | ./run.sh test [pytest args]" >&2
    exit 2
    ;;
esac
