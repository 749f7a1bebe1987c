#!/usr/bin/env bash
# What one operation costs the server in I/O on SQLite: bytes and write
# calls (WAL frames, checkpoints, socket writes) and bytes read, from the
# server's /proc/PID/io before and after a 10 s run, divided by the
# operations the harness counted. Less noisy than throughput on a shared
# 2-core machine, and it moves with the pages a change saves.
# Usage: scripts/bench-io.sh BINDIR [SCENARIO] [CONCURRENCY]
#   BINDIR: a directory holding release builds of `tandem` and `tandem-stress`.
set -euo pipefail
bin=${1:?bin dir}; scen=${2:-orders}; conc=${3:-256}
work=$(mktemp -d); port=18193
env TANDEM_LISTEN=127.0.0.1:$port TANDEM_RATE_LIMITS=off TANDEM_BOOTSTRAP_ADMIN=root:rootpass123 \
    TANDEM_MOCKPAY_SECRET=benchsecret TANDEM_LOG=warn TANDEM_DATABASE_URL="sqlite:$work/t.db" \
    "$bin/tandem" > /dev/null 2> "$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.1; done
extra=(); [ "$scen" = orders ] && extra=(--mockpay-secret benchsecret)
cat "/proc/$pid/io" > "$work/io1"
"$bin/tandem-stress" --target "http://127.0.0.1:$port" --duration 10 --scenario "$scen" \
    --concurrency "$conc" --admin root:rootpass123 "${extra[@]}" --json "$work/r.json" > /dev/null
sleep 1
cat "/proc/$pid/io" > "$work/io2"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def io(f):
    return {l.split(':')[0]: int(l.split(':')[1]) for l in open(f)}
a, b, r = io(w + '/io1'), io(w + '/io2'), json.load(open(w + '/r.json'))
ops = r['ops']
print(f"{r['scenario']}: {r['throughput_per_s']:.0f} /s, {ops} ops; per op: "
      f"{(b['wchar'] - a['wchar']) / ops:.0f} B written in {(b['syscw'] - a['syscw']) / ops:.1f} calls, "
      f"{(b['rchar'] - a['rchar']) / ops:.0f} B read")
PY
