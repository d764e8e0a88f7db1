#!/bin/sh
# The lake's DuckLake catalog gets a database and a role of its own in the stack's Postgres (Airflow's metadata
# stays in $POSTGRES_DB): the role owns only its database, so the pipeline's credentials reach nothing of
# Airflow's. The official postgres image runs this once, on an empty data directory, as $POSTGRES_USER; against an
# existing server, run it by hand with the same variables (docs/deployment.md, "The lake's catalog").
set -eu
: "${SVP_CATALOG_DB:?}" "${SVP_CATALOG_USER:?}" "${SVP_CATALOG_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v db="$SVP_CATALOG_DB" -v role="$SVP_CATALOG_USER" -v password="$SVP_CATALOG_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
