#!/usr/bin/env bash
# Alternating A/B of two release builds: for each round, `orders` and
# `chat-direct` (or SCENARIOS) against build A, then build B, each on a fresh
# server and database, each with the `health` ceiling of the same invocation.
# SQLite by default; BACKEND=postgres uses PostgreSQL + Redis + RabbitMQ on
# this machine (database tandem_ab, dropped and created for every run).
# Usage: [BACKEND=postgres] scripts/ab.sh A_BINDIR B_BINDIR OUTDIR [ROUNDS] [SCENARIOS]
#   A_BINDIR, B_BINDIR: directories holding `tandem` and `tandem-stress`
#   (e.g. copies of target/release of two commits).
set -euo pipefail
a=${1:?A bin dir}; b=${2:?B bin dir}; out=${3:?output dir}; rounds=${4:-3}
scenarios=${5:-"orders chat-direct"}
mkdir -p "$out"
port=18190
run() { # label bindir scenario round
  local label=$1 bin=$2 scen=$3 r=$4 work; work=$(mktemp -d)
  local db=(TANDEM_DATABASE_URL=sqlite:$work/tandem.db)
  if [ "${BACKEND:-sqlite}" = postgres ]; then
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS tandem_ab WITH (FORCE)" -c "CREATE DATABASE tandem_ab"
    db=(TANDEM_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tandem_ab TANDEM_REDIS_URL=redis://127.0.0.1:6379/
        TANDEM_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f TANDEM_NAMESPACE=ab$RANDOM)
  fi
  env TANDEM_LISTEN=127.0.0.1:$port TANDEM_RATE_LIMITS=off TANDEM_BOOTSTRAP_ADMIN=root:rootpass123 \
      TANDEM_MOCKPAY_SECRET=benchsecret TANDEM_LOG=warn "${db[@]}" \
      "$bin/tandem" > "$work/out.txt" 2> "$work/err.txt" &
  local pid=$!
  sleep 3
  local s=("$bin/tandem-stress" --target http://127.0.0.1:$port --duration 15 --compare health)
  case $scen in
    orders) "${s[@]}" --scenario orders --concurrency 256 --admin root:rootpass123 \
              --mockpay-secret benchsecret --json "$out/$label-orders-$r.json" > /dev/null ;;
    order-create) "${s[@]}" --scenario order-create --concurrency 256 --admin root:rootpass123 \
              --json "$out/$label-order-create-$r.json" > /dev/null ;;
    chat-direct) "${s[@]}" --scenario chat-direct --concurrency 128 \
              --json "$out/$label-chat-direct-$r.json" > /dev/null ;;
  esac
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$work"
}
for r in $(seq 1 "$rounds"); do
  for scen in $scenarios; do
    run a "$a" "$scen" "$r"
    run b "$b" "$scen" "$r"
  done
done
echo "reports in $out (a-*.json, b-*.json)"
