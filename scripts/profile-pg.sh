#!/usr/bin/env bash
# Where an `orders` (or other) run on PostgreSQL + Redis + RabbitMQ spends
# its CPU and its statements: starts BINDIR/tandem on a fresh database
# tandem_ab, runs BINDIR/tandem-stress for 20 s at c=256, and from 9 s in
# samples for 8 s (1) each process group's CPU in per cent of one core
# (/proc/PID/stat) and (2) pg_stat_statements grouped by statement text.
# Needs pg_stat_statements preloaded (once, then restart PostgreSQL):
#   ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';
#   ALTER SYSTEM SET pg_stat_statements.track_planning = on;
# Usage: scripts/profile-pg.sh BINDIR [SCENARIO] [OUTDIR]
set -uo pipefail
bin=${1:?bin dir}; scen=${2:-orders}; out=${3:-/tmp/profile-pg}; mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS tandem_ab WITH (FORCE)" -c "CREATE DATABASE tandem_ab"
psql -h 127.0.0.1 -U postgres -d tandem_ab -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
env TANDEM_LISTEN=127.0.0.1:18190 TANDEM_RATE_LIMITS=off TANDEM_BOOTSTRAP_ADMIN=root:rootpass123 \
  TANDEM_MOCKPAY_SECRET=benchsecret TANDEM_LOG=warn TANDEM_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tandem_ab \
  TANDEM_REDIS_URL=redis://127.0.0.1:6379/ TANDEM_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f TANDEM_NAMESPACE=ab$RANDOM \
  "$bin/tandem" > "$out/server.out" 2> "$out/server.err" &
pid=$!
sleep 3
"$bin/tandem-stress" --target http://127.0.0.1:18190 --duration 20 --scenario "$scen" --concurrency 256 \
  --admin root:rootpass123 --mockpay-secret benchsecret --json "$out/report.json" > /dev/null &
spid=$!
sleep 9
psql -h 127.0.0.1 -U postgres -d tandem_ab -qc "SELECT pg_stat_statements_reset()" > /dev/null
tick=$(getconf CLK_TCK); secs=8
snap() {
  for g in tandem postgres beam.smp tandem-stress redis-server; do
    t=0
    for p in $(pgrep -x "$g"); do
      v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t+v))
    done
    echo "$g $t"
  done
  awk '/^cpu /{print "machine_idle", $5+$6}' /proc/stat
}
a=$(snap); sleep $secs; b=$(snap)
paste <(echo "$a") <(echo "$b") | awk -v s=$secs -v tk="$tick" '{printf "%s %.1f%%\n", $1, ($4-$2)*100/(s*tk)}' > "$out/cpu.txt"
psql -h 127.0.0.1 -U postgres -d tandem_ab -f "$here/profile-pg.sql" > "$out/stmts.txt"
wait $spid
kill $pid; wait $pid 2>/dev/null
python3 -c "import json;r=json.load(open('$out/report.json'));print('throughput', round(r['throughput_per_s']), 'p99', r['latency_ms']['p99'])"
cat "$out/cpu.txt"
