-- One row per event that has a settle_event job waiting for its deadline:
-- the deadline the job was inserted for. The deadline discovery loop
-- inserts a job for every event whose current deadline is near and differs
-- from the planned one (and from the settled one), so that events written
-- by the Django backend, which knows nothing of the scheduler, are settled
-- at their deadline too. Comparing deadlines instead of reading
-- events.updated_at means no watermark can skip a change: a row committed
-- late, an update that does not touch updated_at or a clock that steps
-- back all still show up as "current deadline <> planned deadline".
-- ScheduleEventTx writes the same row in the backend's transaction, so the
-- loop does not insert a second job for an event the backend scheduled.
CREATE TABLE wasso_deadline_plan (
    event_id bigint NOT NULL PRIMARY KEY,
    deadline timestamptz NOT NULL,
    planned_at timestamptz NOT NULL,
    -- 'api' (ScheduleEventTx) or 'discovery' (the leader's loop).
    source text NOT NULL
);
