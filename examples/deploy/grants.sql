-- Least-privilege grants for the role wasso-runner runs as (run, sweep,
-- inspect, jobs, River UI), as distinct from the role that owns the tables
-- and runs `wasso-runner migrate up`.
--
-- Run it as the owner of the tables (or a superuser), after every
-- `migrate up` (a later migration may add a table), with psql:
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 \
--        -v role=wasso_runner -v schema=public -f grants.sql
--
-- role is the runner's role, created beforehand, e.g.
--   CREATE ROLE wasso_runner LOGIN PASSWORD '...';
-- schema (default public) holds the Django backend's tables and the
-- scheduler's wasso_ tables, which the runner finds through the
-- search_path of its database URL; river_schema (default: schema) holds
-- River's tables, the runner's `schema` key. It is idempotent, and runs in
-- one transaction: all of it applies or none.
--
-- What the runner can NOT do with these grants: create, alter, drop or
-- truncate anything (so it cannot migrate); write the Django
-- tables other than attendances, nor update an attendance row's columns
-- other than status, is_modified and modified_at; change the migration
-- records. runner/grants_test.go applies this very file and checks both
-- sides.
--
-- LISTEN and NOTIFY, which River uses to wake runners, need no grant in
-- Postgres. The functions (wasso_deadline, river_job_state_in_bitmask) and
-- River's enum type are usable by everyone by default; they are granted
-- below all the same, for databases where PUBLIC's defaults were revoked.

\set ON_ERROR_STOP on

\if :{?role}
\else
  DO $$ BEGIN RAISE EXCEPTION 'grants.sql: name the runner role: psql -v role=NAME [-v schema=NAME] [-v river_schema=NAME] -f grants.sql'; END $$;
\endif
\if :{?schema}
\else
  \set schema public
\endif
\if :{?river_schema}
\else
  \set river_schema :schema
\endif

BEGIN;

-- The database (CONNECT is PUBLIC's by default, unless revoked) and the
-- schema.
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
GRANT USAGE ON SCHEMA :"schema", :"river_schema" TO :"role";

-- The Django backend's tables: read to find due events, their roster and
-- the names in absent notices.
GRANT SELECT ON TABLE
    :"schema".club_club,
    :"schema".club_generation,
    :"schema".club_member,
    :"schema".generation_mapping,
    :"schema".events
TO :"role";

-- attendances: the settlement inserts an ABSENT row for each member
-- without one (the id comes from the identity column, whose sequence
-- needs no grant) and turns UNCHECKED rows ABSENT, which writes three
-- columns only. Reconcile, run after every sweep, deletes the ABSENT rows
-- a settlement inserted above a check-in that committed late; nothing else
-- deletes.
GRANT SELECT, INSERT, DELETE ON TABLE :"schema".attendances TO :"role";
GRANT UPDATE (status, is_modified, modified_at) ON TABLE :"schema".attendances TO :"role";

-- The scheduler's bookkeeping: settlements and planned deadlines are
-- claimed with INSERT ... ON CONFLICT DO UPDATE and pruned once out of the
-- lookback; each runner registers in wasso_runner, beats its heartbeat
-- there and deletes the rows of runners gone for a day. Schedules are
-- managed at run time (the schedule CLI, the schedules page, the leader
-- advancing next_run_at) and every enqueued slot is recorded, and pruned
-- after its retention. The default schedules are seeded once, by setup or
-- a runner's start, and the record of it is only ever added to. The
-- migration record is only read, to refuse to start on a database that is
-- not migrated.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
    :"schema".wasso_settlement,
    :"schema".wasso_deadline_plan,
    :"schema".wasso_runner,
    :"schema".wasso_schedule,
    :"schema".wasso_schedule_slot
TO :"role";
GRANT SELECT, INSERT ON TABLE :"schema".wasso_schedule_seed TO :"role";
GRANT SELECT ON TABLE :"schema".wasso_migration TO :"role";
GRANT EXECUTE ON FUNCTION :"schema".wasso_deadline(timestamptz, integer) TO :"role";

-- River: jobs are inserted, fetched, completed, retried and cleaned up
-- (deleted past their retention); the leader is elected through
-- river_leader; queues are registered, paused and cleaned up in
-- river_queue. river_notification is River's outbox for SQLite only.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
    :"river_schema".river_job,
    :"river_schema".river_leader,
    :"river_schema".river_queue
TO :"role";
GRANT USAGE ON SEQUENCE :"river_schema".river_job_id_seq TO :"role";
GRANT SELECT ON TABLE :"river_schema".river_migration TO :"role";
GRANT USAGE ON TYPE :"river_schema".river_job_state TO :"role";
GRANT EXECUTE ON FUNCTION :"river_schema".river_job_state_in_bitmask(bit, :"river_schema".river_job_state) TO :"role";

-- River's leader reindexes river_job's indexes daily at 00:00 UTC (REINDEX
-- INDEX CONCURRENTLY), which before Postgres 17 only the table's owner may
-- do: there, that maintenance fails with these grants and River logs the
-- error, nothing else is affected; run `REINDEX TABLE CONCURRENTLY
-- river_job` as the owner from time to time instead. Postgres 17 has a
-- privilege for it (which allows VACUUM, ANALYZE and LOCK TABLE too):
SELECT current_setting('server_version_num')::int >= 170000 AS wasso_has_maintain \gset
\if :wasso_has_maintain
  GRANT MAINTAIN ON TABLE :"river_schema".river_job TO :"role";
\endif

COMMIT;
