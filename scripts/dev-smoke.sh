#!/usr/bin/env bash
# Starts `npm run dev` as a user would, checks the stack answers, kills the worker and checks it
# comes back, stops it with Ctrl-C (SIGINT) and checks every port is free again. Run twice: a
# cold start, then a warm one on the same data.
#
# CI runs this on a loaded 2-core machine: every wait below is for a condition, and its bound is
# a ceiling of minutes, not an expectation (an idle machine starts warm in a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=$(mktemp -d)
export DATA_DIR="$data_dir"
logs=$(mktemp -d)
# The local host's workspaces, outside the checkout (scripts/dev.ts demoWorkspaceRoot).
workspaces="${TMPDIR:-/tmp}/mcp-fleet-workspaces-$(printf %s "$data_dir" | sha256sum | cut -c1-12)"
# As root, PostgreSQL's data lives under the runtime dir and .data/postgres is a symlink to it.
trap 'rm -rf "$(readlink -f "$data_dir/postgres")" "$data_dir" "$logs" "$workspaces"' EXIT
api=http://127.0.0.1:3000

# until SECONDS WHAT COMMAND...: runs COMMAND every 0.25 s until it succeeds; after SECONDS, fails naming WHAT.
until_true() {
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$(( $(date +%s) + limit ))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "$what: not within $limit s"; return 1; fi
    sleep 0.25
  done
}

# JSON field of stdin: json 'expression of the parsed value v'.
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);const r=('"$1"');console.log(r===undefined?"":r)})'; }

run_once() {
  local label=$1 started pid log
  # A log of its own: the warm start must not read the cold start's "mcp-fleet is up".
  log="$logs/$label.log"
  started=$(date +%s%N)
  setsid npm run dev >"$log" 2>&1 &
  pid=$!
  up() {
    grep -q 'mcp-fleet is up' "$log" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "npm run dev exited early"; exit 1; fi
    return 1
  }
  until_true 600 "npm run dev ($label) coming up" up || { cat "$log"; exit 1; }
  echo "$label start: $(( ($(date +%s%N) - started) / 1000000 )) ms"
  curl -fsS "$api/api/health" | grep -q '"status":"ok"'
  curl -fsS "$api/api/openapi.json" | grep -q '"openapi":"3.1.0"'
  curl -fsS -o /dev/null "$api/docs"
  curl -fsS -o /dev/null http://127.0.0.1:8233/
  # Output redirected to a file is plain text: no colour codes, and no password.
  if grep -q $'\e\[' "$log"; then grep -m3 $'\e\[' "$log" | cat -v; echo "ANSI escape codes in a redirected log"; exit 1; fi
  [ -f "$data_dir/admin-password" ] || { echo "no $data_dir/admin-password"; exit 1; }
  [ "$(stat -c %a "$data_dir/admin-password")" = 600 ] || { echo "admin-password is not mode 600"; exit 1; }
  password=$(cat "$data_dir/admin-password")
  [ -n "$password" ] || { echo "admin-password is empty"; exit 1; }
  if grep -qF "$password" "$log"; then echo "the admin password is in the output"; exit 1; fi
  grep -q "password in .*admin-password" "$log" || { cat "$log"; echo "the banner does not name the password file"; exit 1; }
  token=$(curl -fsS -H 'content-type: application/json' -d "{\"email\":\"admin@mcp-fleet.local\",\"password\":\"$password\"}" "$api/api/auth/login" | json v.accessToken)
  # The demo host was checked at start, with no connection test from anyone: ONLINE.
  server=$(curl -fsS -H "authorization: Bearer $token" "$api/api/servers" | json 'v.items.find(i=>i.name==="local-host").id')
  status=$(curl -fsS -H "authorization: Bearer $token" "$api/api/servers/$server" | json v.status)
  [ "$status" = ONLINE ] || { cat "$log"; echo "local-host is $status after start, not ONLINE"; exit 1; }
  echo "local-host after start: $status; banner: $(grep -m1 -o 'runs commands on this machine[^)]*): .*' "$log" | sed 's/^[^:]*: //')"
  # Its agents' commands run in a sandbox each, and the server says so.
  sandbox=$(curl -fsS -H "authorization: Bearer $token" "$api/api/servers/$server" | json v.sandbox)
  [ "$sandbox" = bwrap ] || { cat "$log"; echo "local-host runs agents' commands with sandbox \"$sandbox\", not bwrap"; exit 1; }
  if [ "$label" = cold ]; then
    # The seeded admin logs in and the demo host (a real MCP server) answers a connection test.
    curl -fsS -X POST -H "authorization: Bearer $token" "$api/api/servers/$server/test" | grep -q '"status":"ONLINE"' || { echo "demo host test failed"; exit 1; }
    # The seeded MASTER runs a real runbook on the local host (shell engine): git's own output comes back.
    agent=$(curl -fsS -H "authorization: Bearer $token" "$api/api/agents?serverId=$server" | json 'v.items.find(i=>i.name==="runbook"&&i.status==="ACTIVE").id')
    execution=$(curl -fsS -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"prompt":"# Check the toolchain\ngit --version"}' "$api/api/agents/$agent/execute" | json v.executionId)
    finished() {
      result=$(curl -fsS -H "authorization: Bearer $token" "$api/api/executions/$execution")
      echo "$result" | grep -q '"status":"\(COMPLETED\|FAILED\|CANCELLED\|TIMED_OUT\)"'
    }
    until_true 300 "the runbook finishing" finished || { echo "$result"; exit 1; }
    [ -d "$workspaces/$agent" ] || { echo "the runbook's workspace is not in $workspaces"; exit 1; }
    echo "$result" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const e=JSON.parse(s);if(e.status!=="COMPLETED"||!/^git version \d+\.\d+/.test(e.output)){console.log(s);process.exit(1)}console.log(`runbook on the seeded MASTER: ${e.status}, output: ${e.output.trim()}`)})' || { echo "the runbook did not complete with git's output"; exit 1; }
    curl -fsS -H "authorization: Bearer $token" "$api/api/executions/$execution/events" | grep -q '"phase":"tool_result"' || { echo "no tool_result in the runbook's event log"; exit 1; }
    # A crashed child is restarted: kill -9 the worker, wait until it is back, then run a
    # workflow (the connection test) that only a live worker can answer.
    worker=$(json v.worker <"$data_dir/dev-pids.json")
    kill -9 "$worker"
    until_true 300 "the killed worker coming back" grep -q 'worker is up again after restart 1' "$log" || { cat "$log"; exit 1; }
    grep -q 'worker exited (signal SIGKILL); restart 1 in' "$log" || { cat "$log"; echo "no restart line for the killed worker"; exit 1; }
    restarted=$(json v.worker <"$data_dir/dev-pids.json")
    [ "$restarted" != "$worker" ] && kill -0 "$restarted" || { echo "dev-pids.json does not hold the new worker"; exit 1; }
    curl -fsS "$api/api/health" | grep -q '"status":"ok"'
    curl -fsS -X POST -H "authorization: Bearer $token" "$api/api/servers/$server/test" | grep -q '"status":"ONLINE"' || { echo "connection test failed after the worker restart"; exit 1; }
    echo "worker killed with SIGKILL: restarted, and a workflow ran on the new one"
  fi
  # Ctrl-C in a terminal signals the whole foreground process group.
  stopping=$(date +%s%N)
  kill -INT -- "-$pid"
  stopped() { ! kill -0 "$pid" 2>/dev/null; }
  until_true 300 "npm run dev stopping on SIGINT" stopped || { cat "$log"; exit 1; }
  ports_free() {
    local port
    for port in 3000 4100 7233 8233 5433; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 1; fi
    done
  }
  until_true 60 "every port free after the stop" ports_free || { ss -ltnp | grep -E ':(3000|4100|7233|8233|5433)\b' || true; exit 1; }
  none_left() {
    local dir
    for dir in "$data_dir" "$(readlink -f "$data_dir/postgres")"; do
      if pgrep -f "$dir" >/dev/null; then return 1; fi
    done
  }
  until_true 60 "no process left behind" none_left || { pgrep -af "$data_dir" || true; exit 1; }
  echo "$label stop: $(( ($(date +%s%N) - stopping) / 1000000 )) ms"
}

run_once cold
run_once warm
echo "npm run dev: cold and warm start, health, docs, Temporal UI, local-host ONLINE at start, worker restart and clean Ctrl-C all OK"
