#!/usr/bin/env bash
# One timed copy for scripts/bench.sh:
#   run-one.sh TOOL URL BUCKET KEY OUT_PREFIX
# TOOL: ours | aws | rclone | s5cmd. Runs the copy with every client process under
# /usr/bin/time, and writes OUT_PREFIX.res as one line:
#   wall_s cpu_s rss_kib        (cpu = user+sys summed over the client processes,
#                                rss = sum of the processes' peak RSS: a pipeline's two
#                                sides run side by side for the whole copy)
# Logs of each side go to OUT_PREFIX.*.log. Exits non-zero if any client process failed.
# Expects the environment set up by bench.sh (AWS_*, BENCH_BIN, BENCH_TOOLS_BIN, RCLONE_*).
set -euo pipefail

tool=$1 url=$2 bucket=$3 key=$4 out=$5
dest="s3://$bucket/$key"
T=(/usr/bin/time -f '%e %U %S %M')
rm -f "$out".*

# curl as the download side of the pipelines: no progress meter, fail on HTTP errors.
src() { "${T[@]}" -o "$out.t1" curl -sS --fail --noproxy '*' "$url" 2>"$out.curl.log"; }

start=$EPOCHREALTIME
case "$tool" in
  ours)
    "${T[@]}" -o "$out.t1" "$BENCH_BIN" copy "$url" "$dest" --task-id "bench" --output json \
      >"$out.stdout" 2>"$out.ours.log"
    ;;
  aws)
    src | "${T[@]}" -o "$out.t2" "$BENCH_TOOLS_BIN/aws" s3 cp - "$dest" --only-show-errors \
      >"$out.stdout" 2>"$out.aws.log"
    ;;
  s5cmd)
    src | "${T[@]}" -o "$out.t2" "$BENCH_TOOLS_BIN/s5cmd" --endpoint-url "$AWS_ENDPOINT_URL" \
      pipe "$dest" >"$out.stdout" 2>"$out.s5cmd.log"
    ;;
  rclone)
    # rclone's S3 client fails on the CA-bundle variables of this environment (it tries to
    # load them even for plain http): drop them for rclone only.
    env -u AWS_CA_BUNDLE -u SSL_CERT_FILE -u SSL_CERT_DIR -u CURL_CA_BUNDLE \
      -u REQUESTS_CA_BUNDLE -u NIX_SSL_CERT_FILE \
      "${T[@]}" -o "$out.t1" rclone copyurl "$url" "bench:$bucket/$key" \
      >"$out.stdout" 2>"$out.rclone.log"
    ;;
  *) echo "run-one: unknown tool $tool" >&2; exit 2 ;;
esac
end=$EPOCHREALTIME

# GNU time's last line is "elapsed user sys maxrss_kib" (a failed command adds a line first).
python3 - "$start" "$end" "$out" >"$out.res" <<'PY'
import os, sys
start, end, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
cpu = rss = 0.0
for side in ("t1", "t2"):
    path = f"{out}.{side}"
    if os.path.exists(path):
        _, user, system, maxrss = open(path).read().split("\n")[-2].split()
        cpu += float(user) + float(system)
        rss += int(maxrss)
print(f"{end - start:.3f} {cpu:.2f} {int(rss)}")
PY
