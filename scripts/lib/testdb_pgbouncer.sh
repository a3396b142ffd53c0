# shellcheck shell=bash
# scripts/lib/testdb_pgbouncer.sh: a throwaway PgBouncer in front of the
# throwaway PostgreSQL of scripts/testdb. Sourced by scripts/testdb, whose
# helpers and state (ROOT, PG_PORT, ENV_FILE, pick_port, pid_is_ours, ...)
# it uses.
#
#   start-pgbouncer   PgBouncer on 127.0.0.1 (a free port), pool_mode =
#                     transaction, default_pool_size = PGB_POOL_SIZE server
#                     connections to the evdb_test database; SCRAM auth of
#                     the evdb user from an auth_file in the instance's temp
#                     directory. Adds EVDB_TEST_PGBOUNCER_URL (and _PORT) to
#                     the env file.
#   stop-pgbouncer    stops it by its pid (also done by `stop`).
#
# Run as root, PgBouncer runs as the postgres user (runuser); it refuses to
# run as root anyway. It runs in the foreground of a background job with
# its working directory inside the instance, so that pid_is_ours knows it.
#
# The bouncer's config says ignore_startup_parameters = options: evdb
# normally sends its settings as startup options, which PgBouncer 1.18
# otherwise refuses, and the tests show what named statements do through a
# transaction-mode bouncer. evdb's PgBouncer mode sends no startup options.

readonly PGB_POOL_SIZE=4
readonly PGB_MAX_CLIENTS=200

pgb_dir() { echo "$ROOT/pgbouncer"; }
pgb_pidfile() { echo "$(pgb_dir)/pgbouncer.pid"; }

pgb_binary() {
    local b
    b=$(command -v pgbouncer 2>/dev/null || true)
    [ -n "$b" ] || b=/usr/sbin/pgbouncer
    readlink -f "$b" 2>/dev/null || echo "$b"
}

pgb_pid() {
    local f
    f=$(pgb_pidfile)
    [ -r "$f" ] || return 1
    head -n 1 "$f" 2>/dev/null
}

pgb_running() {
    local pid
    [ -n "${ROOT:-}" ] || return 1
    pid=$(pgb_pid) || return 1
    pid_is_ours "$pid" "$(pgb_binary)"
}

pgb_port() {
    local f
    f="$(pgb_dir)/port"
    [ -r "$f" ] && cat "$f"
}

# The env file without any bouncer lines, then the bouncer's (port $1).
pgb_write_env() {
    [ -f "$ENV_FILE" ] || return 0
    grep -v '^EVDB_TEST_PGBOUNCER_' "$ENV_FILE" >"$ENV_FILE.tmp" || true
    if [ -n "${1:-}" ]; then
        echo "EVDB_TEST_PGBOUNCER_URL=postgresql://$APP_USER:$APP_PASSWORD@127.0.0.1:$1/$PG_DB" \
            >>"$ENV_FILE.tmp"
        echo "EVDB_TEST_PGBOUNCER_PORT=$1" >>"$ENV_FILE.tmp"
    fi
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

pgb_configure() { # port
    local d
    d=$(pgb_dir)
    # The password in clear: PgBouncer then does SCRAM both ways.
    printf '"%s" "%s"\n' "$APP_USER" "$APP_PASSWORD" >"$d/userlist.txt"
    cat >"$d/pgbouncer.ini" <<EOF
; evdb throwaway test bouncer (scripts/testdb start-pgbouncer)
[databases]
$PG_DB = host=127.0.0.1 port=$PG_PORT dbname=$PG_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $1
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $d/userlist.txt
pool_mode = transaction
default_pool_size = $PGB_POOL_SIZE
max_client_conn = $PGB_MAX_CLIENTS
ignore_startup_parameters = options
logfile = $d/pgbouncer.log
pidfile = $(pgb_pidfile)
EOF
    chmod 600 "$d/userlist.txt"
    if [ "$IS_ROOT" -eq 1 ]; then
        chown -R postgres:postgres "$d"
    fi
}

# Launch on port $1 and wait until it accepts connections; 2 when the port
# was taken, 1 on other failures.
pgb_start_once() {
    local d pid ticks=$((READY_TIMEOUT_S * 10))
    d=$(pgb_dir)
    pgb_configure "$1"
    rm -f "$(pgb_pidfile)"
    local cmd=("$(pgb_binary)" "$d/pgbouncer.ini")
    if [ "$IS_ROOT" -eq 1 ]; then
        cmd=(runuser -u postgres -- "${cmd[@]}")
    fi
    (cd "$d" && exec "${cmd[@]}" </dev/null >>"$d/stdout.log" 2>&1 9>&-) &
    pid=$!
    while [ "$ticks" -gt 0 ]; do
        if pgb_running && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -d "$PG_DB" 2>/dev/null; then
            echo "$1" >"$d/port"
            return 0
        fi
        if ! pid_alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            if grep -qiE 'address already in use|bind' "$d/pgbouncer.log" "$d/stdout.log" 2>/dev/null; then
                return 2
            fi
            return 1
        fi
        sleep 0.1
        ticks=$((ticks - 1))
    done
    return 1
}

pgb_stop() {
    local pid
    [ -n "${ROOT:-}" ] && [ -d "$(pgb_dir)" ] || return 0
    if pid=$(pgb_pid) && pid_is_ours "$pid" "$(pgb_binary)"; then
        term_pid PgBouncer "$pid"
    fi
    rm -f "$(pgb_pidfile)" "$(pgb_dir)/port"
}

cmd_start_pgbouncer() {
    local rc=0 attempt avoid
    need_instance
    [ -x "$(pgb_binary)" ] || die "pgbouncer not found (install pgbouncer)"
    pg_running || die "PostgreSQL is not running (scripts/testdb start first)"
    if pgb_running; then
        note "PgBouncer already running"
        pgb_write_env "$(pgb_port)"
        cat "$ENV_FILE"
        return 0
    fi
    mkdir -p "$(pgb_dir)"
    avoid="$PG_PORT $MY_PORT"
    for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
        pick_port "$avoid"
        avoid="$avoid $PORT"
        rc=0
        pgb_start_once "$PORT" || rc=$?
        [ "$rc" -eq 2 ] || break
        note "port $PORT was taken; retrying PgBouncer ($attempt/$PORT_ATTEMPTS)"
    done
    if [ "$rc" -ne 0 ]; then
        note "PgBouncer failed to start; last lines of its log:"
        tail -n 15 "$(pgb_dir)/pgbouncer.log" "$(pgb_dir)/stdout.log" >&2 2>/dev/null || true
        pgb_stop
        return 1
    fi
    pgb_write_env "$PORT"
    cat "$ENV_FILE"
}

cmd_stop_pgbouncer() {
    need_instance
    pgb_stop
    pgb_write_env ""
    note "PgBouncer stopped"
}
