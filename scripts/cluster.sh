#!/usr/bin/env bash
# Starts N local Tandem nodes as one cluster on this machine's PostgreSQL,
# Redis and RabbitMQ (see ARCHITECTURE.md, "Several nodes"). Node i listens
# on 127.0.0.1:$((BASE_PORT + i)) with TANDEM_NODE_ID=i; logs in $OUT/node-i.log.
# Ctrl-C (or SIGTERM) stops every node.
# Usage: scripts/cluster.sh [N=3] [BASE_PORT=18100]
#   env: TANDEM_BIN (default target/release/tandem), OUT (default /tmp/tandem-cluster),
#        DB (default postgres://postgres@127.0.0.1:5432/tandem_cluster, created if missing),
#        FRESH=1 drops and recreates that database first.
set -euo pipefail
n=${1:-3}; base=${2:-18100}
bin=${TANDEM_BIN:-target/release/tandem}
out=${OUT:-/tmp/tandem-cluster}
db=${DB:-postgres://postgres@127.0.0.1:5432/tandem_cluster}
[ "$n" -ge 1 ] && [ "$n" -le 16 ] || { echo "N must be 1-16 (node ids 0-15)" >&2; exit 2; }
[ -x "$bin" ] || { echo "no $bin: cargo build --release --bins" >&2; exit 2; }
mkdir -p "$out"
name=${db##*/}; admin=${db%/*}/postgres
if [ "${FRESH:-0}" = 1 ]; then
  psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)"
fi
psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
  || psql "$admin" -qc "CREATE DATABASE $name"
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop INT TERM
for i in $(seq 0 $((n - 1))); do
  env TANDEM_LISTEN=127.0.0.1:$((base + i)) TANDEM_NODE_ID=$i \
      TANDEM_DATABASE_URL="$db" TANDEM_REDIS_URL=${TANDEM_REDIS_URL:-redis://127.0.0.1:6379/} \
      TANDEM_AMQP_URL=${TANDEM_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f} \
      TANDEM_NAMESPACE=${TANDEM_NAMESPACE:-cluster} \
      TANDEM_JWT_SECRET=${TANDEM_JWT_SECRET:-cluster-dev-secret-change-me-0123456789} \
      TANDEM_MOCKPAY_SECRET=${TANDEM_MOCKPAY_SECRET:-cluster-dev-mockpay} \
      "$bin" > "$out/node-$i.out" 2> "$out/node-$i.log" &
  pids+=($!)
  # The first node migrates the database; the others start after it.
  if [ "$i" = 0 ]; then
    for _ in $(seq 1 100); do grep -q "listening" "$out/node-0.out" 2>/dev/null && break; sleep 0.2; done
  fi
done
echo "cluster of $n: http://127.0.0.1:$base .. http://127.0.0.1:$((base + n - 1)) (logs in $out)"
wait
