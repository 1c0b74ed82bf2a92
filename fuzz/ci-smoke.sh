#!/usr/bin/env bash
# Fuzz smoke test for CI: installs cargo-fuzz if it is missing, builds every
# target (stable toolchain, no sanitizer), runs each one for
# FUZZ_SECONDS (default 30) from the committed seeds, and exits non-zero if
# any target crashes, hangs (-timeout) or runs out of memory (-rss_limit_mb).
# Measured on this project's 2-core machine: about 3 min 15 s with
# cargo-fuzz installed and the fuzz build cached (6 targets x 30 s plus
# start-up); on a fresh machine add about 40 s to install cargo-fuzz and
# 2.5 min for the release build of the fuzz workspace, about 6.5 minutes.
#
# Usage: bash fuzz/ci-smoke.sh            (from anywhere)
#        FUZZ_SECONDS=5 bash fuzz/ci-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

seconds="${FUZZ_SECONDS:-30}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "==> cargo fuzz build --sanitizer none"
nice -n 19 cargo fuzz build --sanitizer none

# New corpus entries go to a scratch directory: the committed seeds stay as
# they are.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in $(cargo fuzz list); do
  max_len=65536
  [ "$target" = roundtrip ] && max_len=8192
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  echo "==> fuzz $target for ${seconds}s"
  if nice -n 19 cargo fuzz run --sanitizer none "$target" \
      "$scratch/$target" "fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$max_len" \
      -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
    grep -E 'stat::number_of_executed_units' "$log" || true
  else
    echo "!! $target FAILED; last lines of its log:"
    tail -n 60 "$log"
    echo "!! reproduce with: cargo fuzz run --sanitizer none $target fuzz/artifacts/$target/<file>"
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz smoke FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz smoke passed"
