#!/usr/bin/env bash
# Time `make run` to its first and second champion (issue 26: the fewer base loads of a
# training run should show). Usage, from any folder:
#   benchmarks/make_run_champions.sh CHECKOUT LOG [LIMIT_SECONDS]
# CHECKOUT is a modelops checkout with its .venv installed (`make install`); its .modelops/
# and data/demo are removed first (a fresh start). It starts `make run` there under job
# control, polls the registry (.modelops/modelops.db) every 5 s for promoted adapters,
# prints the seconds from the start to the first and the second promotion (the drift
# sensor's retraining), then stops the whole process group with SIGTERM (then SIGKILL).
# Ports 3000 and 8080 must be free. To compare two commits, run it on a checkout of each,
# one after the other on the same idle machine.
set -u
cd "$1" || exit 2
log=$(realpath -m "$2")
limit=${3:-3600}
rm -rf .modelops data/demo
start=$(date +%s)
set -m
make run >"$log" 2>&1 &
pid=$!
set +m
first="" second=""
while [ $(($(date +%s) - start)) -lt "$limit" ]; do
  sleep 5
  n=$(.venv/bin/python -c "
import sqlite3
try:
    c = sqlite3.connect('file:.modelops/modelops.db?mode=ro', uri=True)
    q = \"select count(distinct adapter_id) from audit_log where action = 'promote'\"
    print(c.execute(q).fetchone()[0])
except Exception:
    print(0)
" 2>/dev/null)
  now=$(($(date +%s) - start))
  if [ -z "$first" ] && [ "${n:-0}" -ge 1 ]; then first=$now; echo "first champion at ${now} s"; fi
  if [ "${n:-0}" -ge 2 ]; then second=$now; echo "second champion at ${now} s"; break; fi
done
kill -TERM -- -"$pid" 2>/dev/null
sleep 5
kill -KILL -- -"$pid" 2>/dev/null
echo "{\"first_champion_s\": ${first:-null}, \"second_champion_s\": ${second:-null}, \"limit_s\": $limit}"
