#!/bin/sh
# Start this machine's PostgreSQL 15 cluster for the test suite and give the current
# user a login that may create databases (each test gets its own) and roles. Run as root, or
# as a user who may use sudo -u postgres. Idempotent.
set -eu
user=$(id -un)
as_postgres() { if [ "$user" = postgres ]; then "$@"; elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
pg_ctlcluster 15 main start 2>/dev/null || pg_ctlcluster 15 main status >/dev/null
# the test cluster only: durability is not what the suite tests, speed is what people need
as_postgres psql -q -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" \
    -c "ALTER SYSTEM SET full_page_writes = off" \
    -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
# (autovacuum off: the tests' databases live for a second, and a login that is not a superuser
# cannot drop a database an autovacuum worker is in)
# (CREATEROLE: the roles tests make the five group roles and officers' logins, as a force's DBA would;
# the officers sign in with a password over TCP, as pg_hba.conf's default lines have it)
exists=$(as_postgres psql -Atc "SELECT 1 FROM pg_roles WHERE rolname = '$user'")
if [ -z "$exists" ]; then
    as_postgres psql -q -c "CREATE ROLE \"$user\" LOGIN CREATEDB CREATEROLE"
else
    as_postgres psql -q -c "ALTER ROLE \"$user\" CREATEDB CREATEROLE"
fi
