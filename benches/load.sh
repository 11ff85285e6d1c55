#!/usr/bin/env bash
# Gridlight benchmark suite: builds the release binary, makes sure the load generator (oha) is
# there, and runs benches/load.py, which creates the synthetic data sets, pins the server to one
# core and oha to the other, and writes benches/results/latest.{json,md}.
#   benches/load.sh            # full run: SQLite and PostgreSQL, 10k / 300k / 3M households
#   benches/load.sh --quick    # smaller sets and shorter runs, to try the suite out
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
if ! command -v oha >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/oha" ]; then
  cargo install oha --locked
fi
export PATH="$HOME/.cargo/bin:$PATH"
exec python3 benches/load.py "$@"
