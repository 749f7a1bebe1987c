#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis (from PyPI, in a venv made here),
# from the served OpenAPI document, signed in as an admin: every generated
# request must get an answer that is not a 5xx, with the documented content
# type and schema. Starts its own server on a fresh database.
#
#   scripts/fuzz.sh [SECONDS] [DATABASE_URL]
#     SECONDS       time budget for schemathesis (default 120)
#     DATABASE_URL  default: a SQLite file in a temp dir; a postgres:// URL
#                   must name an empty database (Redis/RabbitMQ from
#                   TANDEM_REDIS_URL / TANDEM_AMQP_URL when set)
#   TANDEM_FUZZ_SEED  a fixed seed (reproducible runs; .ci/run sets one)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_BUDGET="${1:-120}"
WORK="$(mktemp -d /tmp/tandem-fuzz.XXXXXX)"
DB_URL="${2:-sqlite:$WORK/fuzz.db}"
VENV="${TANDEM_FUZZ_VENV:-$HOME/.cache/tandem-fuzz-venv}"
PORT="${TANDEM_FUZZ_PORT:-18555}"

# Pinned: a new release may generate other inputs or check other things.
SCHEMATHESIS_VERSION=4.32.5
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
SEED_ARGS=()
if [ -n "${TANDEM_FUZZ_SEED:-}" ]; then SEED_ARGS=(--seed "$TANDEM_FUZZ_SEED"); fi
cargo build -q --bin tandem
TANDEM_LISTEN="127.0.0.1:$PORT" TANDEM_DATABASE_URL="$DB_URL" TANDEM_RATE_LIMITS=off \
  TANDEM_BOOTSTRAP_ADMIN=fuzzadmin:fuzz-password-1 TANDEM_MOCKPAY_SECRET=fuzz \
  TANDEM_MEDIA_DIR="$WORK/media" TANDEM_DEMO=on \
  target/debug/tandem >"$WORK/stdout" 2>"$WORK/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.2
done
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"fuzzadmin","password":"fuzz-password-1"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])')
# Left out: routes that end the fuzzer's own session or ban it, and the
# WebSocket upgrade (not HTTP request/response).
set +e # its status is read below (errexit and pipefail would end the script here)
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api-docs/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --exclude-path-regex '(/auth/logout|/me/password|/me/sessions/|/users/\{id\}/ban|/api/v1/ws)' \
  --phases examples,coverage,fuzzing --max-time "$SECONDS_BUDGET" -w 2 "${SEED_ARGS[@]}" | tee "$WORK/report.txt"
STATUS=${PIPESTATUS[0]}
set -e
# schemathesis also exits non-zero when it breaks itself (a "Runtime Error",
# e.g. CPython's "AST constructor recursion depth mismatch" in its coverage
# phase, seen once in CI). That is not a finding about this server: it is
# reported, and only failures (5xx, schema, content type) or panics fail.
if [ "$STATUS" -ne 0 ] && ! grep -q "FAILURES" "$WORK/report.txt" && grep -q "Runtime Error" "$WORK/report.txt"; then
  echo "fuzz: schemathesis hit an internal error (above); no failure of the server was found" >&2
  STATUS=0
fi
if grep -q "panicked" "$WORK/server.log"; then
  echo "fuzz: the server panicked; see $WORK/server.log" >&2
  STATUS=1
fi
echo "fuzz: report and server log in $WORK"
exit "$STATUS"
