#!/usr/bin/env bash
# Runs `tandem-stress --scenario chaos` against a release build: the harness
# starts the server, kills it with SIGKILL every FAULT_INTERVAL seconds and
# starts it again; on PostgreSQL it also restarts Redis and RabbitMQ in
# between. Exits non-zero when a check fails.
# Usage: scripts/chaos.sh sqlite|postgres [SECONDS] [JSON_OUT]
# Environment: FAULT_INTERVAL (15), CONCURRENCY (64), PORT (18095).
set -euo pipefail
backend=${1:?sqlite or postgres}; secs=${2:-300}; json=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
port=${PORT:-18095}
work=$(mktemp -d)
env="TANDEM_LISTEN=127.0.0.1:$port TANDEM_RATE_LIMITS=off TANDEM_BOOTSTRAP_ADMIN=root:rootpass123"
env+=" TANDEM_MOCKPAY_SECRET=chaossecret TANDEM_LOG=warn TANDEM_DEMO=off"
restarts=()
if [ "$backend" = postgres ]; then
  db=tandem_chaos
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  env+=" TANDEM_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db TANDEM_REDIS_URL=redis://127.0.0.1:6379/"
  env+=" TANDEM_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f TANDEM_NAMESPACE=chaos$RANDOM"
  # Redis without persistence: a restart loses every key (revocations,
  # rate buckets, caches), as a cache's restart may.
  restarts+=(--restart-cmd "redis=redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1; sleep 1; redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null")
  # The broker application stops (every connection dropped) and starts again.
  restarts+=(--restart-cmd "rabbitmq=rabbitmqctl -q stop_app && rabbitmqctl -q start_app")
else
  env+=" TANDEM_DATABASE_URL=sqlite:$work/tandem.db"
fi
args=(--target "http://127.0.0.1:$port" --scenario chaos --duration "$secs"
      --concurrency "${CONCURRENCY:-64}" --fault-interval "${FAULT_INTERVAL:-15}"
      --admin root:rootpass123 --mockpay-secret chaossecret
      --server-cmd "exec env $env $bin/tandem")
[ -n "$json" ] && args+=(--json "$json")
"$bin/tandem-stress" "${args[@]}" "${restarts[@]}"
