#!/usr/bin/env bash
# The README's second command: sets everything up, then lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check
.venv/bin/ruff format --check
.venv/bin/mypy
# pytest exits 5 when it collects nothing; set -e turns that (and any failure) into a failed run.
.venv/bin/pytest "$@"
