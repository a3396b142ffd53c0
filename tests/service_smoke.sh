#!/usr/bin/env bash
# service_smoke.sh SERVICE URL ADMIN_URL [REPORT_POOL]: the CI smoke test of
# examples/service against a throwaway server (ctest service_smoke_pg,
# service_smoke_my). Starts the service on a free port with --setup, calls
# every endpoint (good and bad requests, a timeout), runs concurrent
# transfers and checks that the balances still add up, sends SIGTERM with
# a request in flight, and checks that the request was answered, the exit
# status is 0 and no connection of the service is left on the server.
# REPORT_POOL (default 0): --report-pool, /report's own connections.
# Needs curl, and psql or the mariadb client for the admin checks.
set -euo pipefail
SERVICE=$1 URL=$2 ADMIN=$3 REPORT_POOL=${4:-0}
command -v curl >/dev/null || { echo "service_smoke: curl is needed (apt-get install curl)" >&2; exit 1; }
TMP=$(mktemp -d)
SP=""
cleanup() {
    if [ -n "$SP" ] && kill -0 "$SP" 2>/dev/null; then kill -KILL "$SP"; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# The service's database user, whose sessions are counted at the end.
DBUSER=$(sed -E 's|^[a-z]+://([^:@/]+).*|\1|' <<<"$URL")
case $URL in
mariadb:* | mysql:*)
    MY=1
    HOSTPORT=$(sed -E 's|^[a-z]+://[^@]*@([^/]+)/.*|\1|' <<<"$ADMIN")
    AUSER=$(sed -E 's|^[a-z]+://([^:@/]+).*|\1|' <<<"$ADMIN")
    admin() { mariadb --no-defaults -N -B -h "${HOSTPORT%:*}" -P "${HOSTPORT##*:}" -u "$AUSER" -e "$1"; }
    SLEEPING="SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%SLEEP(%' AND id <> CONNECTION_ID()"
    SESSIONS="SELECT COUNT(*) FROM information_schema.processlist WHERE user = '$DBUSER'"
    BALANCES="SELECT SUM(balance) FROM evdb_test.accounts"
    ;;
*)
    MY=0
    admin() { psql -X -qAt "$ADMIN" -c "$1"; }
    SLEEPING="SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
    SESSIONS="SELECT count(*) FROM pg_stat_activity WHERE usename = '$DBUSER'"
    BALANCES="SELECT sum(balance) FROM accounts"
    ;;
esac

"$SERVICE" --setup --port 0 --pool 4 --report-pool "$REPORT_POOL" --threads 2 --timeout 1 --grace 5 "$URL" \
    >"$TMP/out" 2>"$TMP/err" &
SP=$!
for _ in $(seq 300); do
    grep -q '^listening on' "$TMP/out" 2>/dev/null && break
    kill -0 "$SP" 2>/dev/null || { cat "$TMP/err" >&2; echo "service_smoke: the service died" >&2; exit 1; }
    sleep 0.1
done
PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/out")
[ -n "$PORT" ] || { echo "service_smoke: the service did not start" >&2; exit 1; }
B="http://127.0.0.1:$PORT"
echo "service on port $PORT ($([ "$MY" = 1 ] && echo MariaDB || echo PostgreSQL), report pool $REPORT_POOL)"

# check NAME EXPECTED_STATUS BODY_REGEX CURL_ARGS...
check() {
    local name=$1 want=$2 re=$3 got body
    shift 3
    got=$(curl -s -o "$TMP/body" -w '%{http_code}' "$@") || true
    body=$(cat "$TMP/body" 2>/dev/null || true)
    if [ "$got" != "$want" ] || ! grep -Eq -- "$re" <<<"$body"; then
        fail "$name: got $got $body, want $want matching $re"
    else
        echo "ok: $name: $got $body"
    fi
}

check "item" 200 '^\{"id":7,"name":"item-7","price":8\.75\}$' "$B/items/7"
check "missing item" 404 '"error":"no such item"' "$B/items/424242"
check "bad item id" 400 'positive integer' "$B/items/12x"
check "report" 200 '^\{"accounts":1000,"total":1000000\}$' "$B/report"
# Both threads' counters, added up: the three queries above, whichever
# thread ran them (another thread's copy is at most 0.1 s old); with a
# report pool, the report is counted there.
sleep 0.3
if [ "$REPORT_POOL" = 0 ]; then
    check "health" 200 '"status":"ok".*"threads":2,.*"pool":\{"total":[0-9]+.*"queries":[3-9].*"report_pool":null' "$B/health"
else
    check "health" 200 '"status":"ok".*"threads":2,.*"pool":\{"total":[0-9]+.*"queries":[2-9].*"report_pool":\{"total":[0-9]+.*"queries":1,' "$B/health"
fi
check "transfer" 200 '"from":1,"to":2,"amount":10,"attempts":[0-9]+' \
    -H 'Content-Type: application/json' -d '{"from":1,"to":2,"amount":10}' "$B/transfer"
check "insufficient funds" 409 'insufficient funds' -d '{"from":3,"to":4,"amount":1001}' "$B/transfer"
check "missing account" 404 'no such account' -d '{"from":3,"to":999999,"amount":1}' "$B/transfer"
check "bad json" 400 'malformed JSON' -d '{"from":1,"to":2' "$B/transfer"
check "json wrong type" 400 '"amount\\" must be an integer' -d '{"from":1,"to":2,"amount":"1"}' "$B/transfer"
check "json unknown member" 400 'unknown member' -d '{"from":1,"to":2,"amount":1,"x":1}' "$B/transfer"
check "negative amount" 400 'amount must be' -d '{"from":1,"to":2,"amount":-5}' "$B/transfer"
check "unknown path" 404 'no such endpoint' "$B/nowhere"
check "wrong method" 405 'method not allowed' -X DELETE "$B/health"
check "bad sleep" 400 'sleep must be' "$B/report?sleep=soon"
head -c 5000 /dev/zero | tr '\0' 'a' >"$TMP/big"
check "body too large" 413 'too large' --data-binary "@$TMP/big" "$B/transfer"
check "headers too large" 431 'too large' -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' 'a')" "$B/health"

# expect_none SQL TRIES OK_TEXT FAIL_TEXT: the admin query's count must
# reach 0 within TRIES tenths of a second (the server notices a cancel or
# a closed session a moment after the client).
expect_none() {
    local left=1
    for _ in $(seq "$2"); do
        left=$(admin "$1")
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    if [ "$left" = 0 ]; then echo "ok: $3"; else fail "$4 ($left)"; fi
}

# Malformed HTTP on a raw socket: 400, and the connection is closed.
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'NOT HTTP AT ALL\r\n\r\n' >&3
raw=$(timeout 5 cat <&3 || true)
exec 3<&-
if grep -q '^HTTP/1.1 400 ' <<<"$raw" && grep -q 'Connection: close' <<<"$raw"; then
    echo "ok: malformed request: 400, closed"
else
    fail "malformed request: got: $raw"
fi

# Keep-alive: two requests, one connection.
conns=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' "$B/items/1" "$B/items/2" | tr '\n' ' ')
if [ "$conns" = "1 0 " ]; then echo "ok: keep-alive"; else fail "keep-alive: connects per request: $conns"; fi

# A timeout: 504 after the 1 s deadline, and the query no longer runs on
# the server (it would sleep 3 s more if it had not been cancelled).
check "timeout" 504 'timed out after 1\.000 s' "$B/report?sleep=4"
expect_none "$SLEEPING" 20 "the timed-out query was cancelled on the server" \
    "the timed-out query still runs on the server"

# Concurrent transfers among five accounts (conflicts and retries), then
# the balances must add up: every answer is 200 or 409.
for i in $(seq 200); do
    echo "{\"from\":$((i % 5 + 1)),\"to\":$(((i + 1 + i / 5) % 5 + 1)),\"amount\":$((i % 97 + 1))}"
done | grep -v '"from":\([0-9]\),"to":\1,' >"$TMP/transfers"
xargs -d '\n' -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' -d {} "$B/transfer" \
    <"$TMP/transfers" >"$TMP/codes"
n=$(wc -l <"$TMP/transfers")
n200=$(grep -c '^200$' "$TMP/codes" || true)
nbad=$(grep -vc '^\(200\|409\)$' "$TMP/codes" || true)
if [ "$nbad" = 0 ] && [ "$n200" -gt 0 ] && [ "$(wc -l <"$TMP/codes")" = "$n" ]; then
    echo "ok: $n concurrent transfers: $n200 committed, the others 409"
else
    fail "concurrent transfers: $(sort "$TMP/codes" | uniq -c | tr '\n' ' ')"
fi
check "balances add up (service)" 200 '"total":1000000\}' "$B/report?sleep=0"
total=$(admin "$BALANCES")
if [ "$total" = 1000000 ]; then echo "ok: balances add up (server)"; else fail "balances: $total"; fi

# SIGTERM with a request in flight: it is answered, new connections are
# refused, the service exits 0 and leaves no session on the server.
curl -s -o "$TMP/inflight" -w '%{http_code}' "$B/report?sleep=0.8" >"$TMP/inflight_code" &
CP=$!
sleep 0.3
kill -TERM "$SP"
sleep 0.1
if curl -s -o /dev/null --max-time 2 "$B/health"; then
    fail "a new connection was accepted after SIGTERM"
else
    echo "ok: no new connections after SIGTERM"
fi
wait "$CP" || true
if [ "$(cat "$TMP/inflight_code")" = 200 ]; then echo "ok: the in-flight request was answered"; else
    fail "in-flight request during shutdown: $(cat "$TMP/inflight_code") $(cat "$TMP/inflight")"
fi
rc=0
wait "$SP" || rc=$?
SP=""
if [ "$rc" = 0 ]; then echo "ok: exit status 0"; else fail "exit status $rc"; cat "$TMP/err" >&2; fi
grep -q 'stopped cleanly' "$TMP/err" || fail "no clean stop reported: $(cat "$TMP/err")"
expect_none "$SESSIONS" 50 "no connection of the service left on the server" \
    "connections of the service left on the server"

if [ "$FAILS" -ne 0 ]; then
    echo "service_smoke: $FAILS check(s) failed" >&2
    exit 1
fi
echo "service_smoke: all checks passed"
