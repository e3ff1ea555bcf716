DROP TRIGGER wasso_schedule_notify_update ON wasso_schedule;

CREATE TRIGGER wasso_schedule_notify_update
AFTER UPDATE ON wasso_schedule
FOR EACH ROW
WHEN ((OLD.kind, OLD.args, OLD.every_us, OLD.cron, OLD.time_zone, OLD.enabled, OLD.queue, OLD.priority,
       OLD.max_attempts, OLD.start_at, OLD.expires_at, OLD.one_off, OLD.missed, OLD.overlap)
      IS DISTINCT FROM
      (NEW.kind, NEW.args, NEW.every_us, NEW.cron, NEW.time_zone, NEW.enabled, NEW.queue, NEW.priority,
       NEW.max_attempts, NEW.start_at, NEW.expires_at, NEW.one_off, NEW.missed, NEW.overlap)
      OR NEW.next_run_at < OLD.next_run_at
      OR (OLD.next_run_at IS NULL AND NEW.next_run_at IS NOT NULL))
EXECUTE FUNCTION wasso_schedule_notify();

DROP INDEX wasso_schedule_buffered_idx;

UPDATE wasso_schedule SET overlap = 'skip' WHERE overlap IN ('buffer_one', 'cancel_other');

ALTER TABLE wasso_schedule
    DROP CONSTRAINT wasso_schedule_overlap_check,
    ADD CONSTRAINT wasso_schedule_overlap_check CHECK (overlap IN ('skip', 'allow')),
    DROP COLUMN buffered_slot,
    DROP COLUMN pause_after_failures,
    DROP COLUMN jitter_us,
    DROP COLUMN catchup_window_us;
