#!/usr/bin/env bash
# Runs the tandem-stress scenarios against a release build on SQLite (embedded)
# or on PostgreSQL + Redis + RabbitMQ, and writes one JSON report per scenario.
# Usage: scripts/bench.sh sqlite|postgres OUTDIR
set -euo pipefail
backend=${1:?sqlite or postgres}; out=${2:?output directory}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
mkdir -p "$out"; work=$(mktemp -d)
port=18090
env=(TANDEM_LISTEN=127.0.0.1:$port TANDEM_RATE_LIMITS=off TANDEM_BOOTSTRAP_ADMIN=root:rootpass123
     TANDEM_MOCKPAY_SECRET=benchsecret TANDEM_LOG=warn TANDEM_DATABASE_URL=sqlite:$work/tandem.db)
if [ "$backend" = postgres ]; then
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS tandem_bench WITH (FORCE)" -c "CREATE DATABASE tandem_bench"
  env+=(TANDEM_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tandem_bench TANDEM_REDIS_URL=redis://127.0.0.1:6379/
        TANDEM_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f TANDEM_NAMESPACE=bench$RANDOM)
fi
env "${env[@]}" "$bin/tandem" > "$work/out.txt" 2> "$work/err.txt" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 3
s() { "$bin/tandem-stress" --target http://127.0.0.1:$port "$@"; }
s --scenario health --duration 10 --concurrency 64 --json "$out/health.json"
s --scenario flash-sale --concurrency 256 --admin root:rootpass123 --json "$out/flash-sale.json"
s --scenario orders --duration 10 --concurrency 256 --admin root:rootpass123 --mockpay-secret benchsecret --compare health --json "$out/orders.json"
s --scenario order-create --duration 10 --concurrency 256 --admin root:rootpass123 --compare health --json "$out/order-create.json"
s --scenario chat-direct --duration 10 --concurrency 128 --json "$out/chat-direct.json"
s --scenario chat-group --group-size 500 --duration 10 --concurrency 64 --json "$out/chat-group.json"
s --scenario chat-group --group-size 200 --duration 10 --concurrency 10 --rate 1500 --json "$out/chat-group-open.json"
s --scenario mixed --duration 10 --concurrency 128 --admin root:rootpass123 --mockpay-secret benchsecret --json "$out/mixed.json"
s --scenario connections --duration 10 --concurrency 15000 --json "$out/connections.json"
echo "server resident memory: $(grep VmRSS /proc/$server/status)"
echo "write conflicts: $(curl -s http://127.0.0.1:$port/metrics | grep '^tandem_db_conflicts_total' | tr '\n' ' ')"
