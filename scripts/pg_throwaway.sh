#!/usr/bin/env bash
# Manage a throwaway PostgreSQL 15 cluster for the test suite.
#
#   scripts/pg_throwaway.sh start DIR   -> prints postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/pg_throwaway.sh stop DIR    -> stops the cluster and removes DIR (idempotent)
#
# PG_THROWAWAY_DURABLE=1 start DIR keeps fsync on (for benchmarks; see below).
#
# Only the connection URL goes to stdout; everything else goes to stderr.
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

log() { echo "pg_throwaway: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $0 {start|stop} DIR" >&2
    exit 2
}

[ "$#" -eq 2 ] || usage
action="$1"
dir="$2"

case "$dir" in
    "" | "/" | "." | "..") die "refusing to use '$dir' as cluster directory" ;;
esac

# initdb/pg_ctl refuse to run as root: drop to the postgres OS user in that case.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

show_log_tail() {
    if [ -f "$dir/log" ]; then
        log "---- last 40 lines of $dir/log ----"
        tail -n 40 "$dir/log" >&2 || true
        log "-----------------------------------"
    fi
}

stop_server() {
    if [ -f "$dir/data/postmaster.pid" ] && [ -x "$PG_BIN/pg_ctl" ]; then
        log "stopping cluster in $dir/data"
        as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
    fi
}

pick_locale() {
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        echo "C.UTF-8"
    else
        echo "C"
    fi
}

free_port() {
    python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

start() {
    for b in initdb pg_ctl pg_isready; do
        [ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b not found (is postgresql-15 installed?)"
    done
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user"
    fi

    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    chmod 0700 "$dir"
    [ ! -e "$dir/data" ] || die "$dir/data already exists; pick a fresh directory"

    local loc
    loc="$(pick_locale)"
    log "initdb in $dir/data (locale $loc)"
    if ! as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres \
        --encoding=UTF8 --locale="$loc" >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2 || true
        die "initdb failed"
    fi

    # Tests trade durability for speed. PG_THROWAWAY_DURABLE=1 keeps PostgreSQL's
    # durable defaults (fsync, synchronous_commit, full_page_writes on): the
    # benchmark (bench/run.py) compares against figures measured with fsync on.
    local overrides="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if [ "${PG_THROWAWAY_DURABLE:-0}" = "1" ]; then
        overrides=""
        log "durable mode: fsync, synchronous_commit and full_page_writes left on"
    fi

    local port attempt started=0
    for attempt in 1 2 3; do
        port="$(free_port)" || die "could not pick a free TCP port"
        log "starting postgres on 127.0.0.1:$port (attempt $attempt)"
        if as_pg "$PG_BIN/pg_ctl" -w -t 60 -D "$dir/data" -l "$dir/log" \
            -o "-p $port -k $dir -h 127.0.0.1 $overrides -c max_connections=200" \
            start >&2; then
            started=1
            break
        fi
        show_log_tail
        stop_server
    done
    [ "$started" -eq 1 ] || die "pg_ctl start failed"

    for _ in $(seq 1 60); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            log "ready on port $port"
            echo "postgres://postgres@127.0.0.1:$port/postgres"
            return 0
        fi
        sleep 0.5
    done
    show_log_tail
    stop_server
    die "server did not become ready on 127.0.0.1:$port"
}

stop() {
    stop_server
    if [ -e "$dir" ]; then
        log "removing $dir"
        rm -rf -- "$dir"
    fi
}

case "$action" in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
