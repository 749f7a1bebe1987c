#!/usr/bin/env bash
# `chat-direct` at a chosen number of sender/receiver pairs, on a fresh
# server and database: BINDIR/tandem and BINDIR/tandem-stress.
# BACKEND=postgres (default) uses PostgreSQL + Redis + RabbitMQ on this
# machine (database tandem_ab, dropped and created); BACKEND=sqlite a file.
# Setup (two accounts per pair, password hashing) takes about 25 s for
# 1,024 pairs before the DURATION (default 12) seconds measured.
# Usage: [BACKEND=sqlite] [DURATION=12] scripts/chat-pairs.sh BINDIR PAIRS OUT.json
set -uo pipefail
bin=${1:?bin dir}; pairs=${2:?pairs}; out=${3:?report path}
work=$(mktemp -d)
if [ "${BACKEND:-postgres}" = postgres ]; then
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS tandem_ab WITH (FORCE)" -c "CREATE DATABASE tandem_ab" 2>/dev/null
  db=(TANDEM_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tandem_ab TANDEM_REDIS_URL=redis://127.0.0.1:6379/
      TANDEM_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f TANDEM_NAMESPACE=ab$RANDOM)
else
  db=(TANDEM_DATABASE_URL=sqlite:$work/tandem.db)
fi
env TANDEM_LISTEN=127.0.0.1:18190 TANDEM_RATE_LIMITS=off TANDEM_LOG=warn "${db[@]}" \
  "$bin/tandem" > "$work/out.txt" 2> "$work/err.txt" &
pid=$!
sleep 3
"$bin/tandem-stress" --target http://127.0.0.1:18190 --duration "${DURATION:-12}" --scenario chat-direct \
  --concurrency "$pairs" --json "$out" > /dev/null 2>&1
kill $pid; wait $pid 2>/dev/null
python3 -c "import json;r=json.load(open('$out'));print('$out', round(r['throughput_per_s']), 'msg/s p99', r['latency_ms']['p99'], 'ms', r.get('checks'))"
rm -rf "$work"
