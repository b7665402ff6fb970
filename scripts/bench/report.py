"""Summary of scripts/bench.sh's results.tsv: per tool the median throughput, the median
client CPU, the peak RSS; our ratios to each peer; the targets next to the figures.

usage: report.py RESULTS_TSV BIG_MIB SMALL_MIB SOURCE_NAME
"""

import csv
import statistics
import sys

TARGET_TPUT = 1.0   # ours / fastest peer, at least
TARGET_CPU = 0.5    # ours / leanest peer, at most
TARGET_RSS_MIB = 36  # ours, at both sizes, at most

PEER_DESC = {
    "ours": "grok-video-worker copy URL s3://b/k",
    "aws": "curl -s URL | aws s3 cp - s3://b/k",
    "rclone": "rclone copyurl URL remote:b/k",
    "s5cmd": "curl -s URL | s5cmd pipe s3://b/k",
}


def main() -> None:
    path, big, small, source = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    by: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        by.setdefault((r["label"], int(r["size_mib"])), []).append(r)

    def stats(label: str, mib: int) -> dict:
        rs = by[(label, mib)]
        mbs = [mib * 1048576 / float(r["wall_s"]) / 1e6 for r in rs]
        return {
            "n": len(rs),
            "mbs": statistics.median(mbs),
            "mbs_min": min(mbs),
            "mbs_max": max(mbs),
            "cpu": statistics.median(float(r["cpu_s"]) for r in rs),
            "rss": max(int(r["rss_kib"]) for r in rs) / 1024,
            "srv": statistics.median(float(r["server_cpu_s"]) for r in rs),
            "load": statistics.median(float(r.get("load1") or 0) for r in rs),
        }

    labels = []
    for r in rows:
        if int(r["size_mib"]) == big and r["label"] not in labels:
            labels.append(r["label"])
    s = {label: stats(label, big) for label in labels}
    peers = [label for label in labels if not label.startswith("ours")]

    print()
    print(f"== copy of a {big} MiB MP4 from a loopback HTTP server ({source}) into s3s-fs "
          f"(medians of {max(v['n'] for v in s.values())} interleaved runs; MB = 10^6 bytes)")
    print(f"{'tool':<13} {'MB/s':>7} {'(min-max)':>13} {'cpu s':>7} {'peak RSS':>10} "
          f"{'server cpu s':>13} {'load':>5}  command")
    for label in labels:
        v = s[label]
        desc = PEER_DESC.get(label, "")
        if label.startswith("ours "):
            part, inflight = label.split(" p")[1].split("x")
            desc = f"ours, GROK_S3_PART_SIZE_MIB={part} GROK_S3_PARTS_IN_FLIGHT={inflight}"
        elif label == "ours":
            desc += " (defaults: 8 MiB parts, 2 in flight)"
        print(f"{label:<13} {v['mbs']:7.1f} {v['mbs_min']:6.1f}-{v['mbs_max']:<6.1f} {v['cpu']:7.2f} "
              f"{v['rss']:7.1f} MiB {v['srv']:13.2f} {v['load']:5.1f}  {desc}")
    print("  cpu = user+sys of the client processes (curl + uploader for the pipelines); "
          "peak RSS = max over runs (pipelines: curl + uploader);")
    print("  server cpu = s3s-fs + HTTP source during the copy (same machine, 2 cores: it competes with the client);")
    print("  load = median 1-min load average when the runs started (other work on the machine skews figures)")

    if "ours" not in s or not peers:
        return
    print()
    print("== ours / peer (default settings)")
    print(f"{'peer':<13} {'throughput':>11} {'cpu':>7}")
    for p in peers:
        print(f"{p:<13} {s['ours']['mbs'] / s[p]['mbs']:10.2f}x {s['ours']['cpu'] / s[p]['cpu']:6.2f}x")

    fastest = max(peers, key=lambda p: s[p]["mbs"])
    leanest = min(peers, key=lambda p: s[p]["cpu"])
    print()
    print("== targets (ours, default settings)")
    met = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    t = s["ours"]["mbs"] / s[fastest]["mbs"]
    print(f"throughput vs fastest peer ({fastest}): {t:.2f}x   target >= {TARGET_TPUT:.1f}x   {met(t >= TARGET_TPUT)}")
    c = s["ours"]["cpu"] / s[leanest]["cpu"]
    print(f"client cpu vs leanest peer ({leanest}): {c:.2f}x   target <= {TARGET_CPU:.1f}x   {met(c <= TARGET_CPU)}")
    for mib in (small, big):
        if ("ours", mib) in by:
            rss = stats("ours", mib)["rss"]
            print(f"peak RSS at {mib} MiB: {rss:.1f} MiB   target <= {TARGET_RSS_MIB} MiB   {met(rss <= TARGET_RSS_MIB)}")
    variants = [label for label in labels if label.startswith("ours ")]
    if variants:
        print()
        print("== other settings of ours (not targets; same ratios)")
        for label in variants:
            v = s[label]
            print(f"{label:<13} throughput {v['mbs'] / s[fastest]['mbs']:.2f}x {fastest}, "
                  f"cpu {v['cpu'] / s[leanest]['cpu']:.2f}x {leanest}, peak RSS {v['rss']:.1f} MiB")


if __name__ == "__main__":
    main()
