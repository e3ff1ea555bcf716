-- wasso_deadline is the check-in deadline of an event: start + fail_minutes.
--
-- It is declared IMMUTABLE so that events can carry an expression index on
-- it. Postgres marks timestamptz + interval as STABLE because adding days or
-- months depends on the session time zone; an interval made only of minutes
-- is added as a fixed number of microseconds, which no setting changes, so
-- the result really is immutable.
CREATE FUNCTION wasso_deadline(start_datetime timestamptz, fail_minutes integer)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT start_datetime + make_interval(mins => fail_minutes) $$;

-- One row per settled event: the deadline it was settled for. An event is
-- due again only when its current deadline differs from the recorded one
-- (rule 5 of the settlement rules in README.md). The primary key is also the claim that keeps two
-- sweeps from settling one event at once.
CREATE TABLE wasso_settlement (
    event_id bigint NOT NULL PRIMARY KEY,
    deadline timestamptz NOT NULL,
    settled_at timestamptz NOT NULL,
    updated_rows integer NOT NULL DEFAULT 0,
    created_rows integer NOT NULL DEFAULT 0,
    settle_count integer NOT NULL DEFAULT 1
);

CREATE INDEX wasso_settlement_settled_at_idx ON wasso_settlement (settled_at);
