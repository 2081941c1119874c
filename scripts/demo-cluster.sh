#!/usr/bin/env bash
# make demo-cluster: three NATS servers (JetStream, R3) and two pryvsync
# nodes over them on loopback; a replica on each node; a write through node
# A appears live on node B's replica; then node A stops and its replica
# moves to node B and resumes from its cursor.
set -euo pipefail
BIN=${BIN:-./bin/pryvsync}
WORK=$(mktemp -d -t pryvsync-cluster-XXXXXX)
PA=${PORT:-$((20000 + RANDOM % 20000))}
PB=$((PA + 1))
A="http://127.0.0.1:$PA"
B="http://127.0.0.1:$PB"
ADMIN_KEY=demo-admin-key
PIDS=()
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_up() { for _ in $(seq 100); do curl -fs "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "$1 did not start" >&2; exit 1; }

step "Start three NATS servers with JetStream (in one process, data in $WORK/nats)"
"$BIN" nats --dir "$WORK/nats" --nodes 3 > "$WORK/nats.urls" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/nats.urls" ] && break; sleep 0.1; done
NATS=$(cat "$WORK/nats.urls")
echo "NATS: $NATS"

step "Start pryvsync node A on $A and node B on $B, both over that cluster"
"$BIN" serve --store jetstream --nats "$NATS" --data "$WORK/node-a" --listen "127.0.0.1:$PA" --admin-key "$ADMIN_KEY" --log-level warn &
PID_A=$!
PIDS+=($PID_A)
"$BIN" serve --store jetstream --nats "$NATS" --data "$WORK/node-b" --listen "127.0.0.1:$PB" --admin-key "$ADMIN_KEY" --log-level warn &
PIDS+=($!)
wait_up "$A"
wait_up "$B"

step "Create the user on node A, log in on node A, create a channel on node A"
echo "demo-password" | "$BIN" user create --server "$A" --admin-key "$ADMIN_KEY" --email demo@example.com --password-stdin demouser
TOKEN=$(echo "demo-password" | "$BIN" login --server "$A" --username demouser --password-stdin)
curl -fs -X POST "$A/demouser/channels" -H "Authorization: $TOKEN" -H 'Content-Type: application/json' -d '{"id":"diary","name":"Diary"}'; echo

step "The phone syncs with node A, the laptop with node B (same token)"
"$BIN" replica init --dir "$WORK/phone" --server "$A" --username demouser --token "$TOKEN"
"$BIN" replica sync --dir "$WORK/phone"
"$BIN" replica init --dir "$WORK/laptop" --server "$B" --username demouser --token "$TOKEN"
"$BIN" replica sync --dir "$WORK/laptop"

step "The laptop watches node B live; the phone writes through node A"
"$BIN" replica watch --dir "$WORK/laptop" > "$WORK/watch.log" 2>&1 &
WATCH=$!
PIDS+=($WATCH)
sleep 1
EV=$("$BIN" replica events add --dir "$WORK/phone" --channel diary --type note/txt --value '"written on the phone, through node A"')
"$BIN" replica sync --dir "$WORK/phone"
for _ in $(seq 50); do grep -q "$EV" "$WORK/watch.log" && break; sleep 0.1; done
echo "the laptop's watch (node B) printed:"
cat "$WORK/watch.log"
grep -q "$EV" "$WORK/watch.log" || { echo "the write did not reach node B's replica" >&2; exit 1; }
kill "$WATCH"; wait "$WATCH" 2>/dev/null || true

step "Node A stops; the phone records offline, then moves to node B and resumes"
kill "$PID_A"; wait "$PID_A" 2>/dev/null || true
"$BIN" replica events add --dir "$WORK/phone" --channel diary --type note/txt --value '"written while node A was down"' >/dev/null
"$BIN" replica status --dir "$WORK/phone"
"$BIN" replica init --dir "$WORK/phone" --server "$B" --username demouser --token "$TOKEN"
"$BIN" replica sync --dir "$WORK/phone"
"$BIN" replica status --dir "$WORK/phone"
"$BIN" replica sync --dir "$WORK/laptop"

step "Both replicas hold the same events"
echo "phone :"; "$BIN" replica events list --dir "$WORK/phone"
echo "laptop:"; "$BIN" replica events list --dir "$WORK/laptop"
