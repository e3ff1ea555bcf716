-- The sweep looks for events whose deadline falls inside the lookback
-- window. Django created no index on events.start_datetime, so without this
-- one every sweep would read the whole events table. This adds an index and
-- changes no column or constraint of the Django-owned table.
CREATE INDEX wasso_events_deadline_idx ON events (wasso_deadline(start_datetime, fail_minutes));
