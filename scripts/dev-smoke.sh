#!/usr/bin/env bash
# Starts `npm run dev` as a user would, checks the stack answers, kills the worker and checks it
# comes back, stops it with Ctrl-C (SIGINT) and checks every port is free again. Run twice: a
# cold start, then a warm one on the same data.
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=$(mktemp -d)
export DATA_DIR="$data_dir"
log=$(mktemp)
# As root, PostgreSQL's data lives under the runtime dir and .data/postgres is a symlink to it.
trap 'rm -rf "$(readlink -f "$data_dir/postgres")" "$data_dir" "$log"' EXIT

run_once() {
  local label=$1 started pid
  started=$(date +%s%N)
  setsid npm run dev >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 240); do
    grep -q 'mcp-fleet is up' "$log" && break
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "npm run dev exited early"; exit 1; fi
    sleep 0.25
  done
  grep -q 'mcp-fleet is up' "$log" || { cat "$log"; echo "npm run dev did not come up in 60 s"; exit 1; }
  echo "$label start: $(( ($(date +%s%N) - started) / 1000000 )) ms"
  curl -fsS http://127.0.0.1:3000/api/health | grep -q '"status":"ok"'
  curl -fsS http://127.0.0.1:3000/api/openapi.json | grep -q '"openapi":"3.1.0"'
  curl -fsS -o /dev/null http://127.0.0.1:3000/docs
  curl -fsS -o /dev/null http://127.0.0.1:8233/
  if [ "$label" = cold ]; then
    password=$(sed -n 's/.*admin@mcp-fleet.local  password: \([^ ]*\).*/\1/p' "$log" | head -1)
    [ -n "$password" ] || { echo "admin password not printed"; exit 1; }
    # The seeded admin logs in and the demo host (a real MCP server) answers a connection test.
    token=$(curl -fsS -H 'content-type: application/json' -d "{\"email\":\"admin@mcp-fleet.local\",\"password\":\"$password\"}" http://127.0.0.1:3000/api/auth/login | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).accessToken))')
    server=$(curl -fsS -H "authorization: Bearer $token" http://127.0.0.1:3000/api/servers | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).items.find(i=>i.name==="local-host").id))')
    curl -fsS -X POST -H "authorization: Bearer $token" "http://127.0.0.1:3000/api/servers/$server/test" | grep -q '"status":"ONLINE"' || { echo "demo host test failed"; exit 1; }
    # The seeded MASTER runs a real runbook on the local host (shell engine): git's own output comes back.
    agent=$(curl -fsS -H "authorization: Bearer $token" "http://127.0.0.1:3000/api/agents?serverId=$server" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).items.find(i=>i.name==="runbook"&&i.status==="ACTIVE").id))')
    execution=$(curl -fsS -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"prompt":"# Check the toolchain\ngit --version"}' "http://127.0.0.1:3000/api/agents/$agent/execute" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).executionId))')
    for _ in $(seq 1 120); do
      result=$(curl -fsS -H "authorization: Bearer $token" "http://127.0.0.1:3000/api/executions/$execution")
      echo "$result" | grep -q '"status":"\(COMPLETED\|FAILED\|CANCELLED\|TIMED_OUT\)"' && break
      sleep 0.25
    done
    echo "$result" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const e=JSON.parse(s);if(e.status!=="COMPLETED"||!/^git version \d+\.\d+/.test(e.output)){console.log(s);process.exit(1)}console.log(`runbook on the seeded MASTER: ${e.status}, output: ${e.output.trim()}`)})' || { echo "the runbook did not complete with git's output"; exit 1; }
    curl -fsS -H "authorization: Bearer $token" "http://127.0.0.1:3000/api/executions/$execution/events" | grep -q '"phase":"tool_result"' || { echo "no tool_result in the runbook's event log"; exit 1; }
    # A crashed child is restarted: kill -9 the worker, wait until it is back, then run a
    # workflow (the connection test) that only a live worker can answer.
    worker=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).worker)' "$data_dir/dev-pids.json")
    kill -9 "$worker"
    for _ in $(seq 1 240); do grep -q 'worker is up again after restart 1' "$log" && break; sleep 0.25; done
    grep -q 'worker exited (signal SIGKILL); restart 1 in' "$log" || { cat "$log"; echo "no restart line for the killed worker"; exit 1; }
    grep -q 'worker is up again after restart 1' "$log" || { cat "$log"; echo "the worker did not come back"; exit 1; }
    restarted=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).worker)' "$data_dir/dev-pids.json")
    [ "$restarted" != "$worker" ] && kill -0 "$restarted" || { echo "dev-pids.json does not hold the new worker"; exit 1; }
    curl -fsS http://127.0.0.1:3000/api/health | grep -q '"status":"ok"'
    curl -fsS -X POST -H "authorization: Bearer $token" "http://127.0.0.1:3000/api/servers/$server/test" | grep -q '"status":"ONLINE"' || { echo "connection test failed after the worker restart"; exit 1; }
    echo "worker killed with SIGKILL: restarted, and a workflow ran on the new one"
  fi
  # Ctrl-C in a terminal signals the whole foreground process group.
  kill -INT -- "-$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "npm run dev did not stop on SIGINT"; exit 1; fi
  for port in 3000 4100 7233 8233 5433; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port still open after stop"; exit 1; fi
  done
  for dir in "$data_dir" "$(readlink -f "$data_dir/postgres")"; do
    if pgrep -f "$dir" >/dev/null; then pgrep -af "$dir"; echo "processes left behind"; exit 1; fi
  done
}

run_once cold
run_once warm
echo "npm run dev: cold and warm start, health, docs, Temporal UI, worker restart and clean Ctrl-C all OK"
