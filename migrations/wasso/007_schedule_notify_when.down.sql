DROP TRIGGER wasso_schedule_notify_update ON wasso_schedule;
DROP TRIGGER wasso_schedule_notify ON wasso_schedule;

CREATE TRIGGER wasso_schedule_notify
AFTER INSERT OR UPDATE OR DELETE ON wasso_schedule
FOR EACH ROW EXECUTE FUNCTION wasso_schedule_notify();
