-- Policies beyond skip/allow and once/skip/all:
--
-- catchup_window_us: how old a missed slot may be and still run, in
--   microseconds; null keeps the default rule (see schedule.Schedule).
-- jitter_us: the most a slot's job is delayed, by a fixed amount drawn
--   from the schedule's name and the slot, so that schedules due at one
--   instant do not all start at once.
-- pause_after_failures: disable the schedule, with a note by
--   'scheduler', once its last N jobs have all failed; 0 never does.
-- buffered_slot: with overlap 'buffer_one', the one slot waiting for the
--   previous job to finish; the loop enqueues it then.
--
-- overlap gains 'buffer_one' (run once more when the previous job
-- finishes) and 'cancel_other' (cancel the previous job, then enqueue).
ALTER TABLE wasso_schedule
    ADD COLUMN catchup_window_us bigint
        CONSTRAINT wasso_schedule_catchup_window_check CHECK (catchup_window_us BETWEEN 1000000 AND 31622400000000),
    ADD COLUMN jitter_us bigint NOT NULL DEFAULT 0
        CONSTRAINT wasso_schedule_jitter_check CHECK (jitter_us BETWEEN 0 AND 86400000000),
    ADD COLUMN pause_after_failures integer NOT NULL DEFAULT 0
        CONSTRAINT wasso_schedule_pause_after_failures_check CHECK (pause_after_failures BETWEEN 0 AND 100),
    ADD COLUMN buffered_slot timestamptz,
    DROP CONSTRAINT wasso_schedule_overlap_check,
    ADD CONSTRAINT wasso_schedule_overlap_check CHECK (overlap IN ('skip', 'allow', 'buffer_one', 'cancel_other'));

-- The loop looks at the schedules with a buffered slot at each pass.
CREATE INDEX wasso_schedule_buffered_idx ON wasso_schedule (name) WHERE buffered_slot IS NOT NULL;

-- The new settings wake the loop as the others do; buffered_slot is the
-- loop's own.
DROP TRIGGER wasso_schedule_notify_update ON wasso_schedule;

CREATE TRIGGER wasso_schedule_notify_update
AFTER UPDATE ON wasso_schedule
FOR EACH ROW
WHEN ((OLD.kind, OLD.args, OLD.every_us, OLD.cron, OLD.time_zone, OLD.enabled, OLD.queue, OLD.priority,
       OLD.max_attempts, OLD.start_at, OLD.expires_at, OLD.one_off, OLD.missed, OLD.overlap,
       OLD.catchup_window_us, OLD.jitter_us, OLD.pause_after_failures)
      IS DISTINCT FROM
      (NEW.kind, NEW.args, NEW.every_us, NEW.cron, NEW.time_zone, NEW.enabled, NEW.queue, NEW.priority,
       NEW.max_attempts, NEW.start_at, NEW.expires_at, NEW.one_off, NEW.missed, NEW.overlap,
       NEW.catchup_window_us, NEW.jitter_us, NEW.pause_after_failures)
      OR NEW.next_run_at < OLD.next_run_at
      OR (OLD.next_run_at IS NULL AND NEW.next_run_at IS NOT NULL))
EXECUTE FUNCTION wasso_schedule_notify();
