#!/usr/bin/env bash
# make demo: a server on a temporary directory, one user, two replicas that
# record offline and edit the same event on different fields, sync, and
# converge; then a shared token that sees only one channel.
set -euo pipefail
BIN=${BIN:-./bin/pryvsync}
WORK=$(mktemp -d -t pryvsync-demo-XXXXXX)
PORT=${PORT:-$((20000 + RANDOM % 20000))}
URL="http://127.0.0.1:$PORT"
ADMIN_KEY=demo-admin-key
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

step "Start the server on $URL (data in $WORK/server)"
"$BIN" serve --data "$WORK/server" --listen "127.0.0.1:$PORT" --admin-key "$ADMIN_KEY" --log-level warn &
SERVER_PID=$!
for _ in $(seq 50); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

step "Create the user 'demouser' and log in (prints a personal token)"
echo "demo-password" | "$BIN" user create --server "$URL" --admin-key "$ADMIN_KEY" --email demo@example.com --password-stdin demouser
TOKEN=$(echo "demo-password" | "$BIN" login --server "$URL" --username demouser --password-stdin)
echo "token: ${TOKEN:0:6}…"

step "Create two channels over HTTP"
curl -fs -X POST "$URL/demouser/channels" -H "Authorization: $TOKEN" -H 'Content-Type: application/json' -d '{"id":"diary","name":"Diary"}'; echo
curl -fs -X POST "$URL/demouser/channels" -H "Authorization: $TOKEN" -H 'Content-Type: application/json' -d '{"id":"work","name":"Work"}'; echo

step "Two replicas (a phone and a laptop) sync once"
for r in phone laptop; do
  "$BIN" replica init --dir "$WORK/$r" --server "$URL" --username demouser --token "$TOKEN"
  "$BIN" replica sync --dir "$WORK/$r"
done

step "The phone records two events while offline (no sync yet)"
EV=$("$BIN" replica events add --dir "$WORK/phone" --channel diary --type note/txt --value '"went running"' --tag sport)
"$BIN" replica events add --dir "$WORK/phone" --channel work --type note/txt --value '"wrote the report"' >/dev/null
"$BIN" replica events list --dir "$WORK/phone"
"$BIN" replica sync --dir "$WORK/phone"
"$BIN" replica sync --dir "$WORK/laptop"

step "Offline on both: the phone edits the value, the laptop edits the description and adds a tag"
"$BIN" replica events update --dir "$WORK/phone" --value '"went running, 5 km"' "$EV"
"$BIN" replica events update --dir "$WORK/laptop" --description "morning" --add-tag outdoors "$EV"

step "Both sync (twice, so each sees the other's change)"
"$BIN" replica sync --dir "$WORK/phone"
"$BIN" replica sync --dir "$WORK/laptop"
"$BIN" replica sync --dir "$WORK/phone"

step "Converged: the same event on both replicas"
echo "phone : $("$BIN" replica events get --dir "$WORK/phone" --json "$EV")"
echo "laptop: $("$BIN" replica events get --dir "$WORK/laptop" --json "$EV")"

step "A shared token that reads only the 'diary' channel"
SHARED=$(curl -fs -X POST "$URL/demouser/accesses" -H "Authorization: $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"for my coach","permissions":[{"channelId":"diary","level":"read"}]}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
"$BIN" replica init --dir "$WORK/coach" --server "$URL" --username demouser --token "$SHARED"
"$BIN" replica sync --dir "$WORK/coach"
echo "the coach's replica holds:"
"$BIN" replica events list --dir "$WORK/coach"
echo
echo "share link for a browser: $URL/app/#/demouser/$SHARED"
