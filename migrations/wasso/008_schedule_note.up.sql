-- Who paused a schedule, why and when: the note an operator leaves when
-- disabling one (wasso-runner schedule disable --note, the schedules
-- page, Store.Pause), or the scheduler when it pauses one itself. All
-- three are null on an enabled schedule (enabling clears them) and on one
-- created disabled; paused_at is set whenever the other two are. The
-- bounds repeat the store's (PauseByMaxLen, PauseNoteMaxLen) for rows
-- written by hand. No trigger change: the scheduler's loop does not read
-- the note, and disabling wakes it through enabled.
ALTER TABLE wasso_schedule
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_by text
        CONSTRAINT wasso_schedule_paused_by_check CHECK (char_length(paused_by) <= 100),
    ADD COLUMN paused_note text
        CONSTRAINT wasso_schedule_paused_note_check CHECK (char_length(paused_note) <= 500),
    ADD CONSTRAINT wasso_schedule_paused_check
        CHECK (paused_at IS NOT NULL OR (paused_by IS NULL AND paused_note IS NULL));
