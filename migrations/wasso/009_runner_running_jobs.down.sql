ALTER TABLE wasso_runner DROP COLUMN running_job_ids;
