ALTER TABLE wasso_schedule
    DROP CONSTRAINT wasso_schedule_paused_check,
    DROP COLUMN paused_note,
    DROP COLUMN paused_by,
    DROP COLUMN paused_at;
