#!/usr/bin/env bash
# Every check callscope's CI runs: lint, format, types, layer contracts, then the test suite
# on SQLite and (the database layer again) on PostgreSQL.
set -euo pipefail
bin=.venv/bin
export CALLSCOPE_DATA_DIR=${CALLSCOPE_TEST_DATA_DIR:-$(mktemp -d -t callscope-test.XXXXXX)}
unset CALLSCOPE_DATABASE_URL

echo "== lint and format"
$bin/ruff check src tests bench
$bin/ruff format --check src tests bench
echo "== types"
$bin/mypy
echo "== layer contracts"
$bin/lint-imports

echo "== tests (SQLite)"
$bin/pytest -q -p no:cacheprovider --cov --cov-report=term:skip-covered "$@"

pg_url=${CALLSCOPE_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}
if $bin/python scripts/pg_reachable.py "$pg_url"; then
    echo "== database layer tests (PostgreSQL: $pg_url)"
    CALLSCOPE_DATABASE_URL=$pg_url $bin/pytest -q -p no:cacheprovider -m "not network and not browser" \
        tests/store tests/accounts tests/analytics tests/console tests/ingest
elif [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL at $pg_url is unreachable: in CI that is a failure" >&2
    exit 1
else
    echo "== PostgreSQL at $pg_url unreachable: database tests ran on SQLite only"
fi
