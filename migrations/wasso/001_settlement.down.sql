DROP TABLE wasso_settlement;
DROP FUNCTION wasso_deadline(timestamptz, integer);
