#!/usr/bin/env bash
# Smoke test of scripts/stack.sh: start Temporal + moto, exercise both, stop,
# restart Temporal on the same SQLite file, and check nothing is left running.
# Usage: scripts/stack-smoke.sh   (runs install-tools.sh first; ~15-30 s)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-tools.sh" >/dev/null
# shellcheck source=scripts/stack.sh
source "$ROOT/scripts/stack.sh"
stack_trap_cleanup

dir="$ROOT/.stack/smoke"
rm -rf "$dir"
mkdir -p "$dir"
T="$ROOT/.tools/bin/temporal"
PY="$ROOT/.tools/venv/bin/python"

tport=$(stack_free_port)
sport=$(stack_free_port)
stack_start_temporal "$dir" "$tport"
stack_start_s3 "$dir" "$sport"

"$T" workflow list --address "$STACK_TEMPORAL_ADDRESS" >/dev/null
"$T" operator namespace create --address "$STACK_TEMPORAL_ADDRESS" --namespace smoke-ns >/dev/null

AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  "$PY" - "$STACK_S3_ENDPOINT" <<'PY'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1],
                  config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="smoke-bucket")
s3.put_object(Bucket="smoke-bucket", Key="videos/a.mp4", Body=b"hello-video",
              ContentType="video/mp4")
got = s3.get_object(Bucket="smoke-bucket", Key="videos/a.mp4")
assert got["Body"].read() == b"hello-video", "S3 round trip mismatch"
assert got["ContentType"] == "video/mp4"
PY

pids=("${_STACK_PIDS[@]}")
stack_stop_all
stack_stop_all   # second call must be a no-op
for p in "${pids[@]}"; do
  if kill -0 "$p" 2>/dev/null; then echo "smoke: FAIL: pid $p still alive" >&2; exit 1; fi
done
if pgrep -f -- "$dir" >/dev/null || pgrep -f -- "-p $sport" >/dev/null; then
  echo "smoke: FAIL: stray processes:" >&2; pgrep -af -- "$dir" >&2 || true; exit 1
fi

# Same db file, new port: the namespace created above must still be there.
tport2=$(stack_free_port)
stack_start_temporal "$dir" "$tport2"
ns_json="$("$T" operator namespace list --address "$STACK_TEMPORAL_ADDRESS" -o json)"
[[ "$ns_json" == *'"smoke-ns"'* ]] \
  || { echo "smoke: FAIL: namespace smoke-ns lost across restart" >&2; exit 1; }
stack_stop_all
echo "stack smoke: 1 passed, 0 failed"
