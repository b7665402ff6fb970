#!/usr/bin/env bash
# make test: every test, unit and integration. The integration tests start their own
# Temporal dev server, S3 server (moto), provider simulator and worker on loopback, using the
# tools that scripts/install-tools.sh puts into .tools/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/install-tools.sh"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "test: cargo-nextest not found, using cargo test"
  cargo test --workspace --no-fail-fast "$@"
fi
