#!/usr/bin/env bash
# make demo: the main job on the embedded local stack. Starts the Temporal dev server, an S3
# server (moto), the provider simulator and the worker on loopback; orders a video from the
# simulator; archives it with the ArchiveVideo workflow while showing progress; then checks
# that the stored object is byte-for-byte the video the provider served, and stops it all.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/install-tools.sh"
echo "demo: building grok-video-worker (the first build takes a few minutes)"
cargo build --quiet --bin grok-video-worker
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/grok-video-worker"
PY="$ROOT/.tools/venv/bin/python"

# shellcheck source=scripts/stack.sh
source "$ROOT/scripts/stack.sh"
stack_trap_cleanup
DIR="$ROOT/.stack/demo"
rm -rf "$DIR"
mkdir -p "$DIR"

# The local stack's own settings: loopback only, a throwaway key, path-style S3.
export GROK_API_KEY="sk-demo-$RANDOM$RANDOM"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
export GROK_S3_FORCE_PATH_STYLE=true GROK_ALLOW_HTTP_VIDEO_URLS=true GROK_ALLOW_PRIVATE_VIDEO_URLS=true
export GROK_TASK_QUEUE=grok-video
BUCKET=demo-videos
SOURCE_VIDEO=grok_video3_30s_720p.mp4

tport=$(stack_free_port)
stack_start_temporal "$DIR" "$tport"
sport=$(stack_free_port)
stack_start_s3 "$DIR" "$sport"
export TEMPORAL_ADDRESS="$STACK_TEMPORAL_ADDRESS" AWS_ENDPOINT_URL="$STACK_S3_ENDPOINT"

"$PY" - "$BUCKET" <<'PY'
import sys, boto3
boto3.client("s3").create_bucket(Bucket=sys.argv[1])
PY
echo "demo: bucket $BUCKET created on $AWS_ENDPOINT_URL"

# The simulator: 10 s queued, 20 s processing, then the real 30 s 720p MP4.
"$BIN" simulate --listen 127.0.0.1:0 --videos-dir "$ROOT/tests/fixtures" \
  --queued-seconds 10 --processing-seconds 20 >"$DIR/simulator.log" 2>&1 &
stack_track simulator $!
for _ in $(seq 1 100); do
  grep -q "listening on" "$DIR/simulator.log" 2>/dev/null && break
  sleep 0.1
done
SIM_URL=$(sed -n 's/^simulator listening on //p' "$DIR/simulator.log" | head -n1)
[[ -n "$SIM_URL" ]] || { echo "demo: the simulator did not start; see $DIR/simulator.log" >&2; exit 1; }
export GROK_API_BASE_URL="$SIM_URL"
echo "demo: provider simulator at $SIM_URL"

"$BIN" worker >"$DIR/worker.log" 2>&1 &
stack_track worker $!
echo "demo: worker started (log $DIR/worker.log)"

# Order a 30 s video the way a pipeline would: POST /v1/grok/videos.
TASK_ID=$("$PY" - "$SIM_URL" <<'PY'
import json, os, sys, urllib.request
req = urllib.request.Request(
    sys.argv[1] + "/v1/grok/videos",
    data=json.dumps({"model": "grok_video3", "prompt": "a lighthouse at dawn", "duration": 30, "resolution": "720p"}).encode(),
    headers={"Authorization": "Bearer " + os.environ["GROK_API_KEY"], "Content-Type": "application/json"},
)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(json.load(opener.open(req, timeout=10))["id"])
PY
)
echo "demo: provider task $TASK_ID created; archiving it"

"$BIN" archive "$TASK_ID" --bucket "$BUCKET" --first-poll-delay 5 --poll-interval 5 --wait --output json | tee "$DIR/result.json"

"$PY" - "$DIR/result.json" "$ROOT/tests/fixtures/$SOURCE_VIDEO" <<'PY'
import hashlib, json, sys, boto3
result = json.load(open(sys.argv[1]))
source = open(sys.argv[2], "rb").read()
stored = boto3.client("s3").get_object(Bucket=result["bucket"], Key=result["key"])["Body"].read()
print()
print(f"bucket   {result['bucket']}")
print(f"key      {result['key']}")
print(f"size     {result['size_bytes']} bytes")
print(f"sha256   {result['sha256']}")
print(f"polls    {result['polls']}")
ok = stored == source and hashlib.sha256(stored).hexdigest() == result["sha256"]
print("check    stored bytes equal the provider's video" if ok else "check    MISMATCH between stored and source bytes")
sys.exit(0 if ok else 1)
PY
echo "demo: done; stopping the stack"
