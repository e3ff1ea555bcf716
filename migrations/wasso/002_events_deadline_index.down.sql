DROP INDEX wasso_events_deadline_idx;
