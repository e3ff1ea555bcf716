-- Schedules: what django-celery-beat kept in its PeriodicTask,
-- IntervalSchedule, CrontabSchedule and ClockedSchedule tables, in one
-- table that the scheduler loop (schedule.Scheduler, on the River leader)
-- reads and the store (schedule.Store) writes. Every slot of a
-- schedule becomes exactly one River job: the loop locks a due row with
-- FOR UPDATE SKIP LOCKED, inserts the jobs and advances next_run_at in the
-- same transaction, and wasso_schedule_slot below refuses a slot twice.
--
-- The checks repeat the store's validation so that a row written by hand
-- (psql, a Django admin on this table) cannot hold what the loop would
-- choke on; what Postgres cannot check (the cron expression, the time
-- zone's name, the args fitting the kind) only the store checks.
CREATE TABLE wasso_schedule (
    name text NOT NULL PRIMARY KEY
        CONSTRAINT wasso_schedule_name_check CHECK (name ~ '^[A-Za-z0-9._:-]{1,100}$'),
    kind text NOT NULL CONSTRAINT wasso_schedule_kind_check CHECK (kind <> ''),
    args jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT wasso_schedule_args_check CHECK (jsonb_typeof(args) = 'object'),
    -- The interval between slots, in microseconds, for an interval
    -- schedule: one second to 31 days.
    every_us bigint
        CONSTRAINT wasso_schedule_every_check CHECK (every_us BETWEEN 1000000 AND 2678400000000),
    -- A five-field cron expression (or @daily, @hourly...), evaluated in
    -- time_zone, for a cron schedule.
    cron text CONSTRAINT wasso_schedule_cron_check CHECK (cron <> ''),
    time_zone text NOT NULL DEFAULT 'UTC',
    enabled boolean NOT NULL DEFAULT true,
    queue text NOT NULL DEFAULT 'default',
    priority smallint NOT NULL DEFAULT 1
        CONSTRAINT wasso_schedule_priority_check CHECK (priority BETWEEN 1 AND 4),
    max_attempts integer NOT NULL DEFAULT 25
        CONSTRAINT wasso_schedule_max_attempts_check CHECK (max_attempts >= 1),
    start_at timestamptz,
    expires_at timestamptz,
    one_off boolean NOT NULL DEFAULT false,
    description text NOT NULL DEFAULT '',
    -- What a slot that passed while no leader ran becomes: 'once' (one job
    -- for the latest), 'skip' (none) or 'all' (one each, up to a cap).
    missed text NOT NULL DEFAULT 'once'
        CONSTRAINT wasso_schedule_missed_check CHECK (missed IN ('once', 'skip', 'all')),
    -- 'skip': no new job while the previous one has not finished.
    overlap text NOT NULL DEFAULT 'skip'
        CONSTRAINT wasso_schedule_overlap_check CHECK (overlap IN ('skip', 'allow')),
    -- The latest slot a job was enqueued for, and that job.
    last_run_at timestamptz,
    last_job_id bigint,
    -- The next slot; null when the schedule is disabled, expired, or a
    -- one-off that has run.
    next_run_at timestamptz,
    total_run_count bigint NOT NULL DEFAULT 0,
    skipped_count bigint NOT NULL DEFAULT 0,
    missed_count bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wasso_schedule_every_xor_cron CHECK ((every_us IS NULL) <> (cron IS NULL)),
    CONSTRAINT wasso_schedule_expires_check CHECK (expires_at IS NULL OR start_at IS NULL OR expires_at > start_at)
);

-- The loop's two queries, "which rows are due" and "when is the next one",
-- are range scans of this index, whatever the number of disabled rows.
CREATE INDEX wasso_schedule_next_run_at_idx ON wasso_schedule (next_run_at) WHERE enabled;

-- Every change wakes the leader's loop at once (it LISTENs on the channel)
-- instead of at its next poll. The payload is schema.name so that loops of
-- other schemas in the same database (tests, staging) ignore it.
CREATE FUNCTION wasso_schedule_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wasso_schedule', TG_TABLE_SCHEMA || '.' ||
        CASE WHEN TG_OP = 'DELETE' THEN OLD.name ELSE NEW.name END);
    RETURN NULL;
END
$$;

CREATE TRIGGER wasso_schedule_notify
AFTER INSERT OR UPDATE OR DELETE ON wasso_schedule
FOR EACH ROW EXECUTE FUNCTION wasso_schedule_notify();

-- One row per slot a job was enqueued for, whoever enqueued it: the loop
-- ('schedule'), a backfill ('backfill') or a manual run ('run_now'). The
-- primary key is what makes a slot run once: every writer inserts the row
-- with ON CONFLICT DO NOTHING and enqueues only when its row went in, in
-- the same transaction as the job. Rows older than the retention (30 days
-- by default) are pruned by the loop; a backfill reaching further back
-- than that could enqueue a slot again. Deleting a schedule deletes its
-- slots, so that a new schedule of the same name starts afresh.
CREATE TABLE wasso_schedule_slot (
    schedule_name text NOT NULL REFERENCES wasso_schedule (name) ON DELETE CASCADE,
    slot timestamptz NOT NULL,
    job_id bigint,
    source text NOT NULL
        CONSTRAINT wasso_schedule_slot_source_check CHECK (source IN ('schedule', 'backfill', 'run_now')),
    enqueued_at timestamptz NOT NULL,
    PRIMARY KEY (schedule_name, slot)
);

CREATE INDEX wasso_schedule_slot_enqueued_at_idx ON wasso_schedule_slot (enqueued_at);
