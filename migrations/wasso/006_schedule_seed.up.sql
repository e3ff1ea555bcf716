-- The default schedules a deployment starts with (the attendance sweep)
-- are created once, by schedule.Seed (`wasso-runner setup`, and
-- `wasso-runner run` at start), and from then on belong to the operator:
-- one row here per default schedule ever seeded, so that seeding again
-- (every runner start, every setup) never overwrites an edited schedule
-- nor brings back one that was disabled or removed. There is deliberately
-- no foreign key to wasso_schedule: the row outlives the schedule it
-- seeded. Deleting a row here makes the next seeding create that schedule
-- afresh, if it does not exist.
CREATE TABLE wasso_schedule_seed (
    name text NOT NULL PRIMARY KEY,
    seeded_at timestamptz NOT NULL DEFAULT now()
);
