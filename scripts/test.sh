#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit $?

VENV="${STARKIT_VENV:-.venv}"
"$VENV/bin/python" -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
    # pytest's "no tests collected": nothing failed, but say so plainly.
    echo "starkit tests: no tests were collected"
    exit 0
fi
exit "$status"
