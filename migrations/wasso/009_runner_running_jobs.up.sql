-- The jobs each runner is working, as of its heartbeat. A job that the
-- database says is running on a live runner, but that the runner does not
-- report, was abandoned: its completion was lost, for instance by a
-- primary failover that dropped the last commits, while the runner lived
-- on. The leader's rescuer gives such jobs back (see runner/riversql.go).
-- Null for a runner that does not report them.
ALTER TABLE wasso_runner ADD COLUMN running_job_ids bigint[];
