#!/bin/sh
# Runs once, when the PostgreSQL volume is new (the image's /docker-entrypoint-initdb.d):
# the platform's own user, without superuser rights, owning Dagster's database and the
# platform's registry database. `dagster instance migrate` and `modelops init` then create
# the tables as that user.
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v user="$MODELOPS_DB_USER" -v password="$MODELOPS_DB_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE dagster OWNER :"user";
CREATE DATABASE modelops OWNER :"user";
REVOKE ALL ON DATABASE dagster, modelops FROM PUBLIC;
GRANT CONNECT ON DATABASE dagster, modelops TO :"user";
SQL
