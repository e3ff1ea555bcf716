package seed

import (
	"context"
	"fmt"
)

// cloneScheduleSQL copies a wasso_schedule row into $2 rows named $3
// followed by a five-digit number from 1, in one statement.
const cloneScheduleSQL = `
INSERT INTO wasso_schedule (name, kind, args, every_us, cron, time_zone, enabled, queue, priority,
    max_attempts, start_at, expires_at, one_off, description, missed, overlap, next_run_at, created_at, updated_at)
SELECT $3 || lpad(i::text, 5, '0'), kind, args, every_us, cron, time_zone, enabled, queue, priority,
    max_attempts, start_at, expires_at, one_off, description, missed, overlap, next_run_at, created_at, updated_at
FROM wasso_schedule, generate_series(1, $2::int) AS i
WHERE name = $1`

// CloneSchedule copies the schedule named template, settings and next run,
// into n schedules named prefix00001, prefix00002... (n at most 99,999),
// in one statement: a bulk path for benchmarks, whose template is written
// by the schedule store, so that the copies are as valid as it is. It
// returns how many it wrote.
func CloneSchedule(ctx context.Context, db DB, template string, n int, prefix string) (int64, error) {
	if n < 1 || n > 99_999 {
		return 0, fmt.Errorf("clone schedule %q: %d copies: want 1 to 99999", template, n)
	}
	tag, err := db.Exec(ctx, cloneScheduleSQL, template, n, prefix)
	if err != nil {
		return 0, fmt.Errorf("clone schedule %q: %w", template, err)
	}
	if tag.RowsAffected() != int64(n) {
		return tag.RowsAffected(), fmt.Errorf("clone schedule %q: wrote %d of %d", template, tag.RowsAffected(), n)
	}
	return tag.RowsAffected(), nil
}
