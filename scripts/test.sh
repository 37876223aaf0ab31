#!/usr/bin/env bash
# The whole test suite: lint, types, unit and integration tests (real OVS, needs root).
# Exits non-zero when anything fails, and when pytest collected no test at all.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
status=0
.venv/bin/ruff check ryu_dove ovsdb_agent dove_lab tests benchmarks || status=1
.venv/bin/mypy || status=1
bash scripts/vagrant-validate.sh || status=1
.venv/bin/python -m pytest tests -ra "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "test: pytest collected no tests" >&2; rc=1; fi
[ "$rc" = 0 ] || status=1
exit $status
