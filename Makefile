# The two set-up commands: `make demo` (the main job on the embedded local stack) and
# `make test` (all tests). Both install what they need into .tools/ first.
.PHONY: demo test build tools clean record-histories scale bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

build:
	cargo build --release --bin grok-video-worker

tools:
	scripts/install-tools.sh

clean:
	rm -rf .stack target/e2e

# Re-record tests/histories (replayed by `make test`) after a deliberate workflow change.
record-histories:
	scripts/install-tools.sh
	cargo nextest run --run-ignored only -E 'test(record_histories)'

# 2,000 concurrent workflows on one worker (tests/e2e/scale.rs); prints throughput, memory
# and CPU figures. Not part of `make test`.
scale:
	scripts/scale.sh

# Copy a 1 GiB video from a loopback HTTP server into a local S3 server (s3s-fs) with ours,
# curl|aws s3 cp, rclone copyurl and curl|s5cmd pipe; prints MB/s, CPU, peak RSS, ratios
# and targets (scripts/bench.sh; installs its tools with scripts/install-tools.sh --bench).
bench:
	scripts/bench.sh
