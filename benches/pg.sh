# Sourced by the benchmarks that run gun-relay on PostgreSQL: start_pg starts a
# throw-away PostgreSQL server (Debian's postgresql package; initdb into a temp
# dir as the `postgres` user when run as root, a loopback port, fsync on: the
# durable configuration) and sets PG_URL; stop_pg stops it and removes the dir.
PG_PORT="${PG_PORT:-37290}"
PG_DIR=""
PG_URL=""
pg_bindir() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    [[ -n "$d" && -x "$d/initdb" ]] && echo "$d"
}
pg_as() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
start_pg() {
    local bin
    bin="$(pg_bindir)" || { echo "PostgreSQL is not installed (apt-get install -y postgresql)" >&2; return 1; }
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gun-bench-pg.XXXXXX")"
    [[ "$(id -u)" == 0 ]] && chown -R postgres: "$PG_DIR"
    pg_as "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    pg_as "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    PG_BIN="$bin"
}
stop_pg() {
    [[ -n "$PG_DIR" ]] || return 0
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}
