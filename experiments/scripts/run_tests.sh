#!/usr/bin/env bash
# Install what the tests need (in .venv) and run them.
#   bash experiments/scripts/run_tests.sh            the fast tier: unit and parity tests and one train -> test -> demo
#                                                    smoke run (tests marked `slow` left out), about 4 minutes
#   bash experiments/scripts/run_tests.sh --all      every test (CI runs this)
# Other arguments go to pytest (e.g. -k pattern, --durations=10).
set -euo pipefail
cd "$(dirname "$0")/../.."
TIER=(-m "not slow")
ARGS=()
for a in "$@"; do
  if [[ "$a" == "--all" ]]; then TIER=(); else ARGS+=("$a"); fi
done
bash experiments/scripts/setup_env.sh --test
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pytest -q ${TIER[@]+"${TIER[@]}"} ${ARGS[@]+"${ARGS[@]}"}
