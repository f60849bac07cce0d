-- The original's KSQL step (CTA reference §6), adapted to ksqlDB (0.15 or later; these two
-- statements have not been run against a live server here). Submitted one statement at a time
-- by the worker (src/services/ksqldb.rs) with ksql.streams.auto.offset.reset=earliest. A statement
-- whose stream or table already exists is skipped, so running it again changes nothing.
--
-- What changed from the KSQL 5.x statements, and why:
--
-- * TURNSTILE is a STREAM, no longer a TABLE. Design decision: "the turnstile summary counts
--   every turnstile event". A TABLE keeps only the latest row per message key. The topic's key
--   is the Avro record {timestamp}, so a TABLE drops every event that shares a millisecond with
--   another. When a key moves from one station to another, the aggregate also subtracts from
--   the first station, which is why the original's counts stayed tiny. A stream counts every
--   record. ksqlDB (0.10+) would also reject the old TABLE: a table needs a PRIMARY KEY.
--   A literal `station_id INT PRIMARY KEY` would read the Avro-framed key as a 4-byte INT and
--   drop the records, and the `KEY='station_id'` property was removed in 0.10.
--   KEY_FORMAT='NONE' means the stream never reads the key. Without it, a server whose default
--   key format is a schema format would pull a key column from the key subject.
--
-- * TURNSTILE_SUMMARY stays a TABLE on the topic TURNSTILE_SUMMARY, one row per station:
--     key:   the station id, written with KEY_FORMAT='JSON'. A single key is stored unwrapped,
--            so it is the bare number, e.g. the bytes 40380. These are the same bytes as the
--            5.x UTF-8 string key "40380". (With the default KAFKA key format, the key would be
--            a 4-byte big-endian INT.)
--     value: JSON {"STATION_ID":40380,"COUNT":12}. This is the 5.x shape: STATION_ID INT and
--            COUNT BIGINT, upper-cased as ksqlDB writes them. ksqlDB puts GROUP BY columns
--            only in the key. AS_VALUE(station_id) copies the id back into the value, and
--            aliasing the key column to ROWKEY lets the value column keep the name
--            STATION_ID. Without AS_VALUE, the value would be {"COUNT":12}.
--   A new record is written each time a station's count changes, subject to ksqlDB's record
--   cache and commit interval, as in 5.x.
--
-- * Topic names start with ${app.topic_prefix}, which the worker replaces with the app's
--   app.topic_prefix (empty by default) before it submits the statements.
--
-- * No IF NOT EXISTS: the client checks SHOW STREAMS / SHOW TABLES and skips what exists.
--   Repeating a CREATE ... IF NOT EXISTS ... AS SELECT could lose the query when the server
--   restarted (confluentinc/ksql#8173).

CREATE STREAM turnstile (station_id INT, station_name VARCHAR, line VARCHAR)
  WITH (KAFKA_TOPIC='${app.topic_prefix}org.chicago.cta.turnstile.v1', KEY_FORMAT='NONE', VALUE_FORMAT='AVRO');

CREATE TABLE turnstile_summary
  WITH (KAFKA_TOPIC='${app.topic_prefix}TURNSTILE_SUMMARY', KEY_FORMAT='JSON', VALUE_FORMAT='JSON') AS
  SELECT station_id AS ROWKEY,
         AS_VALUE(station_id) AS station_id,
         COUNT(station_id) AS count
  FROM turnstile
  GROUP BY station_id;
