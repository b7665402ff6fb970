#!/usr/bin/env bash
# make scale: 2,000 concurrent ArchiveVideo workflows on one worker against the provider
# simulator with a compressed clock (tests/e2e/scale.rs, an ignored test). Not part of
# `make test`: it runs for several minutes and prints workflows completed, wall time, the
# worker's peak RSS and CPU seconds, CPU seconds per 1,000 status queries and the provider
# request rate.
#
# Built in release by default, so the CPU figures are the shipped binary's;
# GVW_SCALE_CARGO_PROFILE=dev uses the debug build `make test` already made (faster to
# start, slower and hungrier worker). GVW_SCALE_WORKFLOWS=<n> changes the count.
# Extra arguments go to cargo nextest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/install-tools.sh"

cargo nextest --version >/dev/null 2>&1 \
  || { echo "scale: cargo-nextest is required (cargo install cargo-nextest)" >&2; exit 1; }

profile="${GVW_SCALE_CARGO_PROFILE:-release}"
# The repository's nextest profile ends any test after 5 minutes; this run is allowed 35
# (the test itself gives the workflows 25).
config="$ROOT/target/scale-nextest.toml"
mkdir -p "$ROOT/target"
cat >"$config" <<'TOML'
[profile.scale]
slow-timeout = { period = "60s", terminate-after = 35 }
TOML

exec cargo nextest run --cargo-profile "$profile" \
  --tool-config-file "scale:$config" --profile scale \
  --run-ignored only -E 'test(scale)' --no-capture "$@"
