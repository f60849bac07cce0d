-- Creates and fills the CTA `stations` table (database `cta`, user `cta_admin`).
--
-- Run by the official postgres image from /docker-entrypoint-initdb.d/ when it initialises an
-- empty data directory (see docker-compose.yml), with psql -v ON_ERROR_STOP=1 as the superuser
-- POSTGRES_USER. The CSV is the project's data/cta_stations.csv, mounted read-only at /data.
--
-- Columns and types are the original's (load_stations.sql of the Udacity project); "order" is a
-- reserved word, hence quoted, and nullable. The script is idempotent: running it again neither
-- fails nor duplicates rows (the CSV goes into a temporary table, then INSERT ... ON CONFLICT).

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

COMMIT;
