#!/usr/bin/env bash
# A longer fuzz run than CI's: mutated ELF headers, random expressions and mutated Parquet files (the
# ELFFuzzTests, ExpressionFuzzTests and ParquetFuzzTests suites), ten times the cases, with a
# seed of your choice. A failing case prints its seed and input; replay it with the same EDDY_FUZZ_SEED.
#   Tests/fuzz-long.sh [SEED] [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
export EDDY_FUZZ_SEED="${1:-$RANDOM$RANDOM}"
export EDDY_FUZZ_ITERATIONS="${2:-1000000}"
echo "fuzzing with EDDY_FUZZ_SEED=$EDDY_FUZZ_SEED EDDY_FUZZ_ITERATIONS=$EDDY_FUZZ_ITERATIONS"
swift test --filter FuzzTests
