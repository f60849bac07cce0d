-- Creates and fills the CTA `stations` table (database `cta`, user `cta_admin`) and the
-- publication `cta_stations` that a Debezium PostgreSQL connector streams the table through.
-- The one definition of the table and its load, used by both ways of running PostgreSQL:
--
--   * docker-compose.yml: the official postgres image runs it from /docker-entrypoint-initdb.d/
--     once, when it initialises an empty data directory, as
--     `psql -v ON_ERROR_STOP=1 --username cta_admin --dbname cta -f 01-stations.sql`
--     (cta_admin is POSTGRES_USER there, a superuser). The CSV is the project's
--     data/cta_stations.csv, mounted read-only at /data, read by the server (COPY FROM file).
--   * scripts/stack (no Docker): runs it on every `up` of postgres, connected as cta_admin to
--     database cta, with `-v cta_csv_on_stdin=1` and data/cta_stations.csv on psql's standard
--     input (\copy FROM pstdin: nothing has to be readable by the server's OS user).
--
-- The role and the database exist already in both cases (POSTGRES_USER/POSTGRES_DB; the stack's
-- bootstrap). The table is created by, hence owned by, cta_admin.
--
-- Columns and types are the original's (load_stations.sql of the Udacity project); "order" is a
-- reserved word, hence quoted, and nullable. The CSV has a header line.
--
-- Idempotent: running it again neither fails nor duplicates rows. The CSV goes into a temporary
-- table, then INSERT ... ON CONFLICT (stop_id) DO NOTHING: a re-run only adds stations that are
-- missing and deliberately does NOT overwrite rows that were changed since (a test that UPDATEs a
-- station name to see the change flow through Connect is not undone by the next `scripts/stack
-- up`). To get the pristine data back, DELETE FROM stations (or TRUNCATE) and run it again.
--
-- Change data capture (Debezium, plugin.name=pgoutput): the server runs with wal_level=logical;
-- the connecting role needs the REPLICATION attribute (the stack's bootstrap gives it to
-- cta_admin; in Docker cta_admin is a superuser) and a publication covering public.stations.
-- The publication is created here, by the table's owner, so that a connector can use it with
-- publication.name=cta_stations and publication.autocreate.mode=disabled (no need for the
-- connector's role to own the table or to be a superuser, as the autocreate modes would).
-- REPLICA IDENTITY stays DEFAULT: updates and deletes are identified by the primary key stop_id.

\set ON_ERROR_STOP 1

BEGIN;

CREATE TABLE IF NOT EXISTS stations (
  stop_id INTEGER PRIMARY KEY,
  direction_id VARCHAR(1) NOT NULL,
  stop_name VARCHAR(70) NOT NULL,
  station_name VARCHAR(70) NOT NULL,
  station_descriptive_name VARCHAR(200) NOT NULL,
  station_id INTEGER NOT NULL,
  "order" INTEGER,
  red BOOLEAN NOT NULL,
  blue BOOLEAN NOT NULL,
  green BOOLEAN NOT NULL
);

CREATE TEMPORARY TABLE stations_load (LIKE stations) ON COMMIT DROP;

\if :{?cta_csv_on_stdin}
-- scripts/stack: the CSV on psql's standard input (\copy must stay on one line)
\copy stations_load (stop_id, direction_id, stop_name, station_name, station_descriptive_name, station_id, "order", red, blue, green) FROM pstdin WITH (FORMAT csv, HEADER true, DELIMITER ',')
\else
-- docker-compose: the CSV mounted into the server's container
COPY stations_load (
  stop_id,
  direction_id,
  stop_name,
  station_name,
  station_descriptive_name,
  station_id,
  "order",
  red,
  blue,
  green
) FROM '/data/cta_stations.csv' WITH (FORMAT csv, HEADER true, DELIMITER ',');
\endif

INSERT INTO stations (
  stop_id,
  direction_id,
  stop_name,
  station_name,
  station_descriptive_name,
  station_id,
  "order",
  red,
  blue,
  green
)
SELECT
  stop_id,
  direction_id,
  stop_name,
  station_name,
  station_descriptive_name,
  station_id,
  "order",
  red,
  blue,
  green
FROM stations_load
ORDER BY stop_id
ON CONFLICT (stop_id) DO NOTHING;

-- The publication for Debezium (pgoutput): created if missing, and stations added to it if an
-- existing publication of that name lacks the table. Publishes inserts, updates, deletes and
-- truncates (the default).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'cta_stations') THEN
    CREATE PUBLICATION cta_stations FOR TABLE stations;
  ELSIF NOT EXISTS (SELECT FROM pg_publication_tables
                    WHERE pubname = 'cta_stations' AND schemaname = 'public'
                      AND tablename = 'stations') THEN
    ALTER PUBLICATION cta_stations ADD TABLE stations;
  END IF;
END
$$;

COMMIT;
