DROP TABLE wasso_schedule_seed;
