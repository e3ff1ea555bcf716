-- One row per wasso-runner process: its River client id (what River writes
-- in river_job.attempted_by), where it runs, and when it last said it was
-- alive. Each runner writes its row when it starts, refreshes heartbeat_at
-- every few seconds with the database clock, and sets stopped_at when it
-- stops cleanly; `wasso-runner inspect active` reads it to say whether the
-- runner holding a job is still there. River itself records no per-client
-- liveness (river_leader names the leader only), and a runner killed with
-- SIGKILL leaves no trace but a heartbeat that stops. Runners delete rows
-- not refreshed for a day when they start.
CREATE TABLE wasso_runner (
    client_id text NOT NULL PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    stopped_at timestamptz
);
