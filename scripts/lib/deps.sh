# shellcheck shell=bash
# scripts/lib/deps.sh: the Debian 12 packages evdb needs to build, test and
# run its throwaway servers. Sourced by scripts/test and scripts/demo.
#
#   evdb_ensure_deps   installs what is missing when run as root (apt-get),
#                      else prints the one command to run and returns 1.
#                      Does nothing (no apt-get update) when all is present.

EVDB_DEPS=(
    gcc libc6-dev make cmake pkg-config
    libev-dev libc-ares-dev libpq-dev libmariadb-dev check libsubunit-dev
    postgresql-15 mariadb-server mariadb-client openssl scdoc
    curl pgbouncer
)

# Prints the packages of EVDB_DEPS that are not installed, one per line.
evdb_missing_deps() {
    local p status
    for p in "${EVDB_DEPS[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$status" = installed ] || echo "$p"
    done
}

evdb_ensure_deps() {
    local missing=()
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "deps: no dpkg-query: not a Debian system; install the equivalents of:" >&2
        echo "  ${EVDB_DEPS[*]}" >&2
        return 1
    fi
    mapfile -t missing < <(evdb_missing_deps)
    [ "${#missing[@]}" -eq 0 ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: missing packages: ${missing[*]}" >&2
        echo "run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        return 1
    fi
    echo "deps: installing ${missing[*]}" >&2
    # No prompts, no stdin (CI runs without one), keep existing configs.
    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null
    mapfile -t missing < <(evdb_missing_deps)
    if [ "${#missing[@]}" -ne 0 ]; then
        echo "deps: still missing after apt-get install: ${missing[*]}" >&2
        return 1
    fi
}
