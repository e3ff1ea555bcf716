DROP TABLE wasso_schedule_slot;
DROP TABLE wasso_schedule;
DROP FUNCTION wasso_schedule_notify();
