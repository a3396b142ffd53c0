#!/bin/sh
# run_with_testdb.sh DIR PROGRAM ARGS...: run PROGRAM with every argument
# of the form @NAME replaced by NAME's value from DIR/env (written by
# scripts/testdb), so CTest can pass the throwaway servers' URLs.
set -eu
dir=$1
shift
prog=$1
shift
for arg in "$@"; do
    case $arg in
    @*)
        name=${arg#@}
        value=$(sed -n "s/^$name=//p" "$dir/env")
        if [ -z "$value" ]; then
            echo "run_with_testdb.sh: $name is not in $dir/env" >&2
            exit 1
        fi
        set -- "$@" "$value"
        ;;
    *) set -- "$@" "$arg" ;;
    esac
    shift
done
exec "$prog" "$@"
