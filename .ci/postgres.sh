#!/usr/bin/env bash
# A real PostgreSQL server on this machine, for the tests that keep a search's study in one
# (hydra.sweeper.storage=postgresql://..., docs/search.md), as a cluster's shared database does.
#
# Debian's postgresql package, but not its "main" cluster: a cluster of our own under $DIR, on
# 127.0.0.1:$PORT (not 5432, so a machine's own server is left alone), run as user postgres;
# a role and database "lucid_arch" with a password, reached over TCP as the search's jobs reach
# it from SLURM nodes. Idempotent: `up` installs what is missing, creates the cluster, role and
# database if absent, starts the server if it is not running and waits until it answers; `down`
# stops it (pg_ctl, by its data directory).
#
# Usage: .ci/postgres.sh up|down|status|url
#   url prints the SQLAlchemy URL the tests read from LUCID_ARCH_TEST_POSTGRES_URL:
#   export LUCID_ARCH_TEST_POSTGRES_URL="$(.ci/postgres.sh url)"
set -euo pipefail

DIR="${LUCID_POSTGRES_DIR:-/var/lib/lucid-arch-postgres}"
PORT="${LUCID_POSTGRES_PORT:-15432}"
ROLE=lucid_arch
DATABASE=lucid_arch
PASSWORD=lucid_arch  # a test server on the loopback interface only
URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"

say() { echo "postgres: $*" >&2; }
die() { say "$*"; exit 1; }

bindir() {  # the newest installed server's binaries (Debian keeps them out of PATH)
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n $found && -x $found/pg_ctl ]] || return 1
    echo "$found"
}

install_packages() {
    bindir >/dev/null && return 0
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed; run as root to install Debian's postgresql package"
    say "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends postgresql >/dev/null
}

as_postgres() {  # run a command as the postgres user (the server refuses to run as root)
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() { as_postgres "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; }

psql_admin() { as_postgres "$BIN/psql" -h "$DIR/socket" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

create_cluster() {
    [[ -s $DIR/data/PG_VERSION ]] && return 0
    mkdir -p "$DIR/socket" "$DIR/log"
    [[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$DIR"
    say "creating a cluster in $DIR/data"
    # Local connections by the postgres user itself (peer), TCP with a password (what the tests use).
    as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 -E UTF8 >/dev/null
}

start_server() {
    running && return 0
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR/socket -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
        || { tail -n 20 "$DIR/log/server.log" >&2 || true; die "the server did not start (log: $DIR/log/server.log)"; }
}

create_database() {
    if [[ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]]; then
        psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'"
    fi
    if [[ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]]; then
        psql_admin -c "CREATE DATABASE $DATABASE OWNER $ROLE"
    fi
}

wait_ready() {  # answers over TCP, with the password, as the tests connect
    for _ in $(seq 60); do
        if PGPASSWORD=$PASSWORD "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DATABASE" -qtA -c "SELECT 1" >/dev/null 2>&1; then
            say "up: $(PGPASSWORD=$PASSWORD "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DATABASE" -qtA -c "SHOW server_version") on 127.0.0.1:$PORT, database $DATABASE"
            return 0
        fi
        sleep 0.5
    done
    die "the server does not answer on 127.0.0.1:$PORT (log: $DIR/log/server.log)"
}

case "${1:-}" in
    up)
        install_packages
        BIN="$(bindir)"
        create_cluster
        start_server
        create_database
        wait_ready
        ;;
    down)
        BIN="$(bindir)" || { say "not installed"; exit 0; }
        if [[ -s $DIR/data/PG_VERSION ]] && running; then
            as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
        fi
        say "down"
        ;;
    status)
        BIN="$(bindir)" || die "not installed"
        if [[ -s $DIR/data/PG_VERSION ]] && running; then
            say "running on 127.0.0.1:$PORT (data $DIR/data)"
        else
            die "not running"
        fi
        ;;
    url)
        echo "$URL"
        ;;
    *)
        echo "usage: $0 up|down|status|url" >&2
        exit 2
        ;;
esac
