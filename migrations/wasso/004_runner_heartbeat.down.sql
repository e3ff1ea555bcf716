DROP TABLE wasso_runner;
