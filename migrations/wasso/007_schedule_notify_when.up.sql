-- The loop's own writes (advancing next_run_at, the counters, the last
-- job) need no wake-up: only inserts, deletes and changes an operator
-- makes do. An update wakes the loop when a setting that decides the
-- slots changed, or when the next run moved earlier (an edit by hand).
DROP TRIGGER wasso_schedule_notify ON wasso_schedule;

CREATE TRIGGER wasso_schedule_notify
AFTER INSERT OR DELETE ON wasso_schedule
FOR EACH ROW EXECUTE FUNCTION wasso_schedule_notify();

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
