#!/bin/sh
# A PostgreSQL role per postpay service (mounted into /docker-entrypoint-initdb.d; runs once, when the
# data volume is created). Each service's role creates its own tables at start (its migrations) and is
# the only service role that can use them; the owner role `postpay` is a member of every one, so the
# relay and the operators' tools, which log in as it, reach every service's tables.
set -eu
for service in signup provisioner usage_collector invoicer scheduler meter; do
  variable="POSTGRES_$(echo "$service" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  password=$(printenv "$variable")
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
       -v role="postpay_$service" -v password="$password" -v owner="$POSTGRES_USER" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
GRANT USAGE, CREATE ON SCHEMA public TO :"role";
GRANT :"role" TO :"owner";
SQL
done
