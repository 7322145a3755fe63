#!/usr/bin/env bash
# Install what the tests need (in .venv) and run the whole test suite; extra arguments go to pytest.
#   bash experiments/scripts/run_tests.sh [-k pattern] [-m "not slow"]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/scripts/setup_env.sh --test
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pytest -q "$@"
