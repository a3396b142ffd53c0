# shellcheck shell=bash
# scripts/lib/testdb_standby.sh: a PostgreSQL streaming standby and a
# MariaDB replica of the throwaway servers of scripts/testdb, which sources
# this file (it uses that script's helpers and state: ROOT, PG_PORT, MY_PORT,
# as_pg, as_my, pick_port, pid_is_ours, ...).
#
#   start-standby     pg_basebackup -R of the running primary, started as a
#                     hot standby on 127.0.0.1 and a free port; the env file
#                     gains EVDB_TEST_PG_STANDBY_URL / _PORT (same user,
#                     password and database as EVDB_TEST_PG_URL). It streams
#                     as application_name `evdb_standby` (a name for
#                     synchronous_standby_names).
#   promote-standby   pg_ctl promote; returns once it accepts writes
#   stop-standby      stop it (by pid) and remove its data
#   start-my-replica  a second MariaDB server loaded from a dump of the
#                     primary's test database, replicating from it by GTID,
#                     read_only=1; env EVDB_TEST_MY_REPLICA_URL / _PORT
#   stop-my-replica   stop it (by pid) and remove its data
#
# Both live under $ROOT (pg-standby/, my-replica/), so `scripts/testdb stop`
# finds them; its teardown calls standby_teardown.

# PORT is set by pick_port (scripts/testdb).
# shellcheck disable=SC2153
readonly SB_APP_NAME=evdb_standby
readonly MYR_REPL_USER=evdb_repl
readonly MYR_REPL_PASSWORD=evdb_repl_secret
MY_DUMP=$(command -v mariadb-dump 2>/dev/null || echo /usr/bin/mariadb-dump)

# ------------------------------------------------------------------ env file

# Replace the lines of keys $1.. (a prefix each) in the env file by stdin.
env_replace() {
    local tmp=$ENV_FILE.tmp k skip line
    [ -f "$ENV_FILE" ] || return 0
    : >"$tmp"
    while IFS= read -r line; do
        skip=0
        for k in "$@"; do
            case $line in
            "$k"=*) skip=1 ;;
            esac
        done
        [ "$skip" -eq 1 ] || printf '%s\n' "$line" >>"$tmp"
    done <"$ENV_FILE"
    cat >>"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

# -------------------------------------------------------- PostgreSQL standby

sb_dir() { echo "$ROOT/pg-standby"; }
sb_data() { echo "$ROOT/pg-standby/data"; }

sb_pid() {
    local f
    f="$(sb_data)/postmaster.pid"
    [ -r "$f" ] || return 1
    head -n 1 "$f" 2>/dev/null
}

sb_running() {
    local pid
    pid=$(sb_pid) || return 1
    pid_is_ours "$pid" "$PG_SERVER"
}

sb_port() { cat "$(sb_dir)/port" 2>/dev/null; }

sb_psql() { # port sql
    as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres \
        -d postgres -c "$2"
}

sb_stop() {
    local pid
    [ -n "$ROOT" ] && [ -d "$(sb_dir)" ] || return 0
    if pid=$(sb_pid) && pid_is_ours "$pid" "$PG_SERVER"; then
        if ! as_pg "$PG_BIN/pg_ctl" -D "$(sb_data)" -m fast -w -t "$STOP_TIMEOUT_S" stop \
            >>"$(sb_dir)/pg_ctl.log" 2>&1; then
            if pid_is_ours "$pid" "$PG_SERVER"; then
                kill_stuck standby "$pid"
            fi
        fi
    fi
    rm -rf -- "$(sb_dir)"
    env_replace EVDB_TEST_PG_STANDBY_ </dev/null
}

sb_fail() {
    note "standby failed: $1; last lines of $(sb_dir)/postgres.log:"
    tail -n 15 "$(sb_dir)/postgres.log" >&2 2>/dev/null || true
    tail -n 15 "$(sb_dir)/basebackup.log" >&2 2>/dev/null || true
    sb_stop
    return 1
}

cmd_start_standby() {
    local port attempt rc dir data
    need_instance
    pg_running || die "the PostgreSQL primary does not run"
    if sb_running; then
        note "standby already running on port $(sb_port)"
        return 0
    fi
    sb_stop
    dir=$(sb_dir)
    data=$(sb_data)
    mkdir -p "$dir"
    [ "$IS_ROOT" -eq 1 ] && chown postgres:postgres "$dir"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$data" -R \
        -X stream -c fast --no-sync >"$dir/basebackup.log" 2>&1 ||
        sb_fail "pg_basebackup" || return 1
    # The copied configuration includes the primary's port file; the
    # standby gets its own port and a name for synchronous replication.
    cat >>"$data/postgresql.auto.conf" <<EOF
primary_conninfo = 'host=127.0.0.1 port=$PG_PORT user=postgres application_name=$SB_APP_NAME'
EOF
    sed -i "s|^unix_socket_directories = .*|unix_socket_directories = '$dir'|" \
        "$data/postgresql.conf"
    rc=1
    for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
        pick_port "$PG_PORT $MY_PORT"
        port=$PORT
        echo "port = $port" >"$data/evdb_port.conf"
        [ "$IS_ROOT" -eq 1 ] && chown postgres:postgres "$data/evdb_port.conf" \
            "$data/postgresql.auto.conf"
        if as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t "$READY_TIMEOUT_S" \
            start >>"$dir/pg_ctl.log" 2>&1; then
            rc=0
            break
        fi
        grep -qiE 'could not bind|address already in use' "$dir/postgres.log" 2>/dev/null ||
            break
        note "port $port was taken; retrying the standby ($attempt/$PORT_ATTEMPTS)"
    done
    [ "$rc" -eq 0 ] || sb_fail "pg_ctl start" || return 1
    echo "$port" >"$dir/port"
    # Streaming: the primary sees the standby's WAL receiver.
    local ticks=$((READY_TIMEOUT_S * 10)) n
    while [ "$ticks" -gt 0 ]; do
        n=$(sb_psql "$PG_PORT" "SELECT count(*) FROM pg_stat_replication
                 WHERE application_name = '$SB_APP_NAME' AND state = 'streaming'" 2>/dev/null ||
            echo 0)
        [ "$n" = 1 ] && break
        sleep 0.1
        ticks=$((ticks - 1))
    done
    [ "$n" = 1 ] || sb_fail "not streaming after ${READY_TIMEOUT_S}s" || return 1
    env_replace EVDB_TEST_PG_STANDBY_ <<EOF
EVDB_TEST_PG_STANDBY_URL=postgresql://$APP_USER:$APP_PASSWORD@127.0.0.1:$port/$PG_DB
EVDB_TEST_PG_STANDBY_PORT=$port
EOF
    note "standby streaming on 127.0.0.1:$port"
}

cmd_promote_standby() {
    local port ticks=$((READY_TIMEOUT_S * 10)) r=""
    need_instance
    sb_running || die "the standby does not run"
    port=$(sb_port)
    as_pg "$PG_BIN/pg_ctl" -D "$(sb_data)" -w -t "$READY_TIMEOUT_S" promote \
        >>"$(sb_dir)/pg_ctl.log" 2>&1 || die "pg_ctl promote failed"
    while [ "$ticks" -gt 0 ]; do
        r=$(sb_psql "$port" "SELECT pg_is_in_recovery()" 2>/dev/null || true)
        [ "$r" = f ] && break
        sleep 0.1
        ticks=$((ticks - 1))
    done
    [ "$r" = f ] || die "the standby still is in recovery after ${READY_TIMEOUT_S}s"
    note "standby on port $port promoted: accepts writes"
}

cmd_stop_standby() {
    need_instance
    sb_stop
    note "standby stopped"
}

# ----------------------------------------------------------- MariaDB replica

myr_dir() { echo "$ROOT/my-replica"; }
myr_socket() { echo "$ROOT/my-replica/mariadbd.sock"; }
myr_pidfile() { echo "$ROOT/my-replica/mariadbd.pid"; }
myr_port() { cat "$(myr_dir)/port" 2>/dev/null; }

myr_pid() {
    [ -r "$(myr_pidfile)" ] || return 1
    head -n 1 "$(myr_pidfile)" 2>/dev/null
}

myr_running() {
    local pid
    pid=$(myr_pid) || return 1
    pid_is_ours "$pid" "$MY_SERVER"
}

myr_sql() { # sql (as root on the replica's socket)
    "$MY_CLIENT" --no-defaults --socket="$(myr_socket)" -uroot -N -B -e "$1"
}

myr_stop() {
    local pid
    [ -n "$ROOT" ] && [ -d "$(myr_dir)" ] || return 0
    if pid=$(myr_pid) && pid_is_ours "$pid" "$MY_SERVER"; then
        term_pid replica "$pid"
    fi
    rm -rf -- "$(myr_dir)"
    env_replace EVDB_TEST_MY_REPLICA_ </dev/null
}

myr_fail() {
    note "MariaDB replica failed: $1; last lines of $(myr_dir)/error.log:"
    tail -n 15 "$(myr_dir)/error.log" >&2 2>/dev/null || true
    myr_stop
    return 1
}

# Launch the replica's mariadbd on $1; sets MYR_LAUNCH_PID.
myr_launch() {
    local dir
    dir=$(myr_dir)
    local cmd=("$MY_SERVER" --no-defaults
        --datadir="$dir/data"
        --port="$1"
        --bind-address=127.0.0.1
        --socket="$(myr_socket)"
        --pid-file="$(myr_pidfile)"
        --log-error="$dir/error.log"
        --tmpdir="$dir/tmp"
        --skip-name-resolve
        --max-connections=300
        --server-id=2
        --read-only=1
        --skip-slave-start
        --relay-log=relay
        --innodb-flush-log-at-trx-commit=0
        --innodb-doublewrite=0
        --innodb-use-native-aio=0
        --innodb-buffer-pool-size=64M
        --character-set-server=utf8mb4
        --collation-server=utf8mb4_general_ci)
    if [ "$IS_ROOT" -eq 1 ]; then
        cmd=(runuser -u mysql -- "${cmd[@]}")
    fi
    "${cmd[@]}" </dev/null >>"$dir/stdout.log" 2>&1 9>&- &
    MYR_LAUNCH_PID=$!
}

myr_wait_ready() {
    local ticks=$((READY_TIMEOUT_S * 10))
    while [ "$ticks" -gt 0 ]; do
        if [ -S "$(myr_socket)" ] && myr_pid >/dev/null &&
            "$MY_ADMIN" --no-defaults --socket="$(myr_socket)" -uroot --connect-timeout=2 \
                ping >/dev/null 2>&1; then
            return 0
        fi
        if ! pid_alive "$MYR_LAUNCH_PID"; then
            wait "$MYR_LAUNCH_PID" 2>/dev/null || true
            if grep -qiE 'address already in use|bind on tcp/ip port' "$(myr_dir)/error.log" \
                2>/dev/null; then
                return 2
            fi
            return 1
        fi
        sleep 0.1
        ticks=$((ticks - 1))
    done
    return 1
}

cmd_start_my_replica() {
    local dir port attempt rc ticks io sqlr st
    need_instance
    my_running || die "the MariaDB primary does not run"
    if myr_running; then
        note "replica already running on port $(myr_port)"
        return 0
    fi
    myr_stop
    dir=$(myr_dir)
    mkdir -p "$dir/tmp"
    [ "$IS_ROOT" -eq 1 ] && chown -R mysql:mysql "$dir"
    as_my "$MY_INSTALL" --no-defaults --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 ||
        myr_fail "mariadb-install-db" || return 1
    rc=1
    for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
        pick_port "$PG_PORT $MY_PORT"
        port=$PORT
        myr_launch "$port"
        rc=0
        myr_wait_ready || rc=$?
        [ "$rc" -eq 2 ] || break
        note "port $port was taken; retrying the replica ($attempt/$PORT_ATTEMPTS)"
    done
    [ "$rc" -eq 0 ] || myr_fail "start" || return 1
    echo "$port" >"$dir/port"
    # The replication user on the primary; the same application users on
    # the replica (not replicated: they predate the dump).
    my_sql "CREATE USER IF NOT EXISTS '$MYR_REPL_USER'@'127.0.0.1' IDENTIFIED BY '$MYR_REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO '$MYR_REPL_USER'@'127.0.0.1';" || myr_fail "replication user" ||
        return 1
    myr_sql "CREATE USER '$APP_USER'@'127.0.0.1' IDENTIFIED BY '$APP_PASSWORD';
CREATE USER '$APP_USER'@'localhost' IDENTIFIED BY '$APP_PASSWORD';
GRANT ALL PRIVILEGES ON $PG_DB.* TO '$APP_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON $PG_DB.* TO '$APP_USER'@'localhost';
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;" >>"$dir/setup.log" 2>&1 || myr_fail "replica users" || return 1
    # A consistent copy of the test database and the GTID position it
    # matches (SET GLOBAL gtid_slave_pos), then replication from there.
    "$MY_DUMP" --no-defaults --socket="$(my_socket)" -uroot --single-transaction \
        --gtid --master-data=1 --databases "$PG_DB" 2>>"$dir/setup.log" |
        "$MY_CLIENT" --no-defaults --socket="$(myr_socket)" -uroot >>"$dir/setup.log" 2>&1 ||
        myr_fail "copy of $PG_DB" || return 1
    myr_sql "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$MY_PORT,
MASTER_USER='$MYR_REPL_USER', MASTER_PASSWORD='$MYR_REPL_PASSWORD',
MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos; START SLAVE;" >>"$dir/setup.log" 2>&1 ||
        myr_fail "CHANGE MASTER" || return 1
    ticks=$((READY_TIMEOUT_S * 10))
    while [ "$ticks" -gt 0 ]; do
        st=$("$MY_CLIENT" --no-defaults --socket="$(myr_socket)" -uroot -e "SHOW SLAVE STATUS\G" \
            2>/dev/null || true)
        io=$(sed -n 's/^ *Slave_IO_Running: //p' <<<"$st")
        sqlr=$(sed -n 's/^ *Slave_SQL_Running: //p' <<<"$st")
        [ "$io" = Yes ] && [ "$sqlr" = Yes ] && break
        sleep 0.1
        ticks=$((ticks - 1))
    done
    [ "$io" = Yes ] && [ "$sqlr" = Yes ] ||
        myr_fail "replication not running (IO $io, SQL $sqlr)" || return 1
    env_replace EVDB_TEST_MY_REPLICA_ <<EOF
EVDB_TEST_MY_REPLICA_URL=mariadb://$APP_USER:$APP_PASSWORD@127.0.0.1:$port/$PG_DB
EVDB_TEST_MY_REPLICA_PORT=$port
EOF
    note "MariaDB replica running on 127.0.0.1:$port (read_only=1)"
}

cmd_stop_my_replica() {
    need_instance
    myr_stop
    note "MariaDB replica stopped"
}

# Called by teardown (scripts/testdb stop).
standby_teardown() {
    sb_stop || true
    myr_stop || true
}
