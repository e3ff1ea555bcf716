DROP TABLE wasso_deadline_plan;
