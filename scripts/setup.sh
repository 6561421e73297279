#!/usr/bin/env bash
# Creates (or updates) the project's virtual environment: starkit with its dev extras and the
# bundled CelebA and RaFD plugin distributions, all editable. Idempotent: a second run only
# checks what is installed. Needs Python 3.11 and pip; nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${STARKIT_VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "starkit setup: creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

echo "starkit setup: installing starkit, its plugins and test tools into $VENV"
"$VENV/bin/python" -m pip install --quiet \
    -e ".[dev]" \
    -e plugins/starkit-celeba \
    -e plugins/starkit-rafd
