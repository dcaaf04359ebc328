#!/usr/bin/env bash
# shellcheck shell=bash
# ---- test services on loopback: MariaDB + Redis (+ optional PostgreSQL) -------------
# Source it from .ci/run (bash):   . .ci/services.sh ; ci_services_up ; trap ci_services_down EXIT
# Safe to re-run: installs only missing apt packages, reuses servers that already answer.
# ci_services_down stops only the servers this shell started (CI_STARTED): a server that was
# already running (a developer's, or one another job uses) is left alone.
# Needs root (Debian 12 image, no systemd). Set WITH_POSTGRES=1 to also start PostgreSQL 15 (and
# install PgBouncer, which the tests start themselves).
# Also installs Chromium + chromedriver for the admin browser tests (WITH_BROWSER=0 skips them).
CI_SVC_DIR="${CI_SVC_DIR:-${TMPDIR:-/tmp}/ci-services}"
export MYSQL_HOST=127.0.0.1 MYSQL_PORT="${MYSQL_PORT:-3306}"
export MYSQL_DATABASE="${MYSQL_DATABASE:-djapp}" MYSQL_USER="${MYSQL_USER:-djapp}" MYSQL_PASSWORD="${MYSQL_PASSWORD:-djapp-pw}"
export MYSQL_UNIX_SOCKET="$CI_SVC_DIR/mysql/mysqld.sock"
export REDIS_HOST=127.0.0.1 REDIS_PORT="${REDIS_PORT:-6379}"
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export PGHOST=127.0.0.1 PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-djapp}" PGPASSWORD="${PGPASSWORD:-djapp-pw}" PGDATABASE="${PGDATABASE:-djapp}"
export DATABASE_URL_MYSQL="mysql://${MYSQL_USER}:${MYSQL_PASSWORD}@127.0.0.1:${MYSQL_PORT}/${MYSQL_DATABASE}"
export DATABASE_URL_POSTGRES="postgresql://${PGUSER}:${PGPASSWORD}@127.0.0.1:${PGPORT}/${PGDATABASE}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"   # Debian 12: PostgreSQL 15
CI_STARTED=()   # the servers this shell started: mariadb, redis, postgres

_ci_wait() {  # _ci_wait SECONDS CMD...   -> 0 once CMD succeeds
  local n=$(( $1 * 10 )); shift
  while ((n-- > 0)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

ci_services_install() {
  local need=()
  command -v mariadbd >/dev/null 2>&1     || need+=(mariadb-server)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v pkg-config >/dev/null 2>&1   || need+=(pkg-config)
  pkg-config --exists libmariadb 2>/dev/null || need+=(libmariadb-dev)   # to build mysqlclient
  if [ "${WITH_POSTGRES:-0}" = 1 ] && [ ! -x "$PG_BIN/initdb" ]; then need+=(postgresql); fi
  # PgBouncer: tests/django/test_postgres_many_workers.py starts one of its own (transaction mode).
  if [ "${WITH_POSTGRES:-0}" = 1 ] && [ ! -x /usr/sbin/pgbouncer ]; then need+=(pgbouncer); fi
  if [ "${WITH_BROWSER:-1}" = 1 ]; then
    command -v chromium >/dev/null 2>&1     || need+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  fi
  if ((${#need[@]})); then
    echo "ci-services: apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

ci_mariadb_up() {
  local d="$CI_SVC_DIR/mysql"
  if ! mariadb-admin --no-defaults -hlocalhost --socket="$MYSQL_UNIX_SOCKET" -uroot ping >/dev/null 2>&1; then
    rm -rf "$d"; mkdir -p "$d"
    mariadb-install-db --no-defaults --user=root --datadir="$d/data" \
      --auth-root-authentication-method=socket --skip-test-db >"$d/install.log" 2>&1 \
      || { cat "$d/install.log"; return 1; }
    CI_STARTED+=(mariadb)   # before the wait: a server that starts too slowly is still ours to stop
    setsid nohup mariadbd --no-defaults --user=root --datadir="$d/data" \
      --socket="$MYSQL_UNIX_SOCKET" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
      --pid-file="$d/mysqld.pid" --log-error="$d/error.log" --skip-name-resolve \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
      --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=256M \
      --max-connections=300 </dev/null >"$d/stdout.log" 2>&1 &
    _ci_wait 60 mariadb-admin --no-defaults -hlocalhost --socket="$MYSQL_UNIX_SOCKET" -uroot ping \
      || { echo "MariaDB did not start:"; tail -20 "$d/error.log"; return 1; }
  fi
  # user may create/drop test_<db>, test_<db>_1.. (Django test runner, --parallel, pytest-xdist)
  mariadb --no-defaults -hlocalhost --socket="$MYSQL_UNIX_SOCKET" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'localhost';
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'127.0.0.1';
SQL
  mariadb --no-defaults -h127.0.0.1 -P"$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" -N -e 'select version()'
}

ci_redis_up() {
  local d="$CI_SVC_DIR/redis"; mkdir -p "$d"
  if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" != PONG ]; then
    CI_STARTED+=(redis)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" --dir "$d"
    _ci_wait 30 sh -c "[ \"\$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping)\" = PONG ]" \
      || { echo "Redis did not start:"; tail -20 "$d/redis.log"; return 1; }
  fi
  echo "redis $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p')"
}

ci_postgres_up() {
  local d="$CI_SVC_DIR/pg"
  if ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
    rm -rf "$d"; mkdir -p "$d/sock"; chown -R postgres:postgres "$d"
    su postgres -c "$PG_BIN/initdb -D '$d/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >"$d/initdb.log" 2>&1 \
      || { cat "$d/initdb.log"; return 1; }
    CI_STARTED+=(postgres)
    su postgres -c "$PG_BIN/pg_ctl -D '$d/data' -l '$d/server.log' -w -t 60 start -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k $d/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\"" >/dev/null \
      || { tail -20 "$d/server.log"; return 1; }
  fi
  psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT 'CREATE ROLE "$PGUSER" LOGIN SUPERUSER PASSWORD ''$PGPASSWORD'''
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PGUSER') \gexec
SELECT 'CREATE DATABASE "$PGDATABASE" OWNER "$PGUSER"'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PGDATABASE') \gexec
SQL
  psql -h 127.0.0.1 -p "$PGPORT" -U "$PGUSER" -d "$PGDATABASE" -tA -c 'show server_version'
}

ci_services_up() {
  mkdir -p "$CI_SVC_DIR"
  ci_services_install || return 1
  ci_mariadb_up || return 1
  ci_redis_up || return 1
  if [ "${WITH_POSTGRES:-0}" = 1 ]; then ci_postgres_up || return 1; fi
}

ci_services_down() {  # stops the servers this shell started (CI_STARTED), by their pid files
  local f s
  for s in "${CI_STARTED[@]}"; do
    case $s in
      mariadb) f="$CI_SVC_DIR/mysql/mysqld.pid"; [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null ;;
      redis) f="$CI_SVC_DIR/redis/redis.pid"; [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null ;;
      postgres) [ -f "$CI_SVC_DIR/pg/data/postmaster.pid" ] && su postgres -c "$PG_BIN/pg_ctl -D '$CI_SVC_DIR/pg/data' -m fast -w stop" >/dev/null 2>&1 ;;
    esac
  done
  # wait until mariadbd has exited (it removes its pid file)
  case " ${CI_STARTED[*]} " in
    *" mariadb "*) _ci_wait 30 sh -c "[ ! -e '$CI_SVC_DIR/mysql/mysqld.pid' ]" || true ;;
  esac
  if ((${#CI_STARTED[@]})); then echo "ci-services: stopped ${CI_STARTED[*]}"; fi
  CI_STARTED=()
  return 0
}
# ---------------------------------------------------------------------------------------
