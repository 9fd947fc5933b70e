#!/usr/bin/env bash
# Static checks, configured in pyproject.toml: ruff (lint + format) on src/ and tests/, mypy on src/medglip.
# Uses the active environment's python (ruff and mypy come with the `test` extra), or $PYTHON.
# Every check runs even when an earlier one fails, so one run lists all the problems.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
status=0
"$py" -m ruff check src tests || status=1
"$py" -m ruff format --check src tests || status=1
"$py" -m mypy || status=1
exit $status
