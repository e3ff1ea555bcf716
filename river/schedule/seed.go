package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SeedOutcome says what Seed did with one schedule.
type SeedOutcome string

const (
	// SeedCreated: the schedule was created by this call.
	SeedCreated SeedOutcome = "created"
	// SeedKept: the schedule was seeded before, by an earlier call, and
	// was left as it is now: as seeded, edited, disabled, or deleted (in
	// which case it stays deleted).
	SeedKept SeedOutcome = "kept"
	// SeedExisting: the schedule had not been seeded, but one of that name
	// existed already (created by hand): it was left as it is, and is
	// recorded as seeded from now on.
	SeedExisting SeedOutcome = "existing"
)

// Seeded is what Seed did with one schedule.
type Seeded struct {
	Name    string      `json:"name"`
	Outcome SeedOutcome `json:"outcome"`
	// SeededAt is when the schedule was first seeded: now for
	// SeedCreated and SeedExisting.
	SeededAt time.Time `json:"seeded_at"`
}

// seedSQL records a schedule as seeded; no row comes back when it was
// seeded before. A concurrent seeding of the same name waits for the
// first to commit, then finds the row: each default schedule is created
// by one seeding only, however many runners start at once.
const seedSQL = `
INSERT INTO wasso_schedule_seed (name, seeded_at) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
RETURNING seeded_at`

// Seed creates each of schedules that was never seeded before,
// each in a transaction of its own with its record in wasso_schedule_seed,
// and returns what it did, in the order given. A schedule seeded once is
// never written again, so that seeding at every start (wasso-runner run
// does) never undoes an operator's edits and never brings back a
// schedule that was disabled or deleted. Errors: a *FieldError
// for a schedule the store refuses (nothing of it is written; the
// schedules before it are seeded), or a database error.
func Seed(ctx context.Context, db Beginner, store *Store, schedules []Schedule) ([]Seeded, error) {
	out := make([]Seeded, 0, len(schedules))
	for _, sched := range schedules {
		seeded, err := scheduleTx(ctx, db, func(tx pgx.Tx) (Seeded, error) {
			return store.seed(ctx, tx, sched)
		})
		if err != nil {
			return out, err
		}
		out = append(out, seeded)
	}
	return out, nil
}

func (s *Store) seed(ctx context.Context, tx pgx.Tx, sched Schedule) (Seeded, error) {
	res := Seeded{Name: sched.Name}
	var seededAt time.Time
	err := tx.QueryRow(ctx, seedSQL, sched.Name, s.now()).Scan(&seededAt)
	if errors.Is(err, pgx.ErrNoRows) {
		// Seeded before: read when, for the caller's report.
		if err := tx.QueryRow(ctx, `SELECT seeded_at FROM wasso_schedule_seed WHERE name = $1`, sched.Name).Scan(&seededAt); err != nil {
			return res, scheduleErr(fmt.Sprintf("seed schedule %q", sched.Name), err)
		}
		res.Outcome, res.SeededAt = SeedKept, seededAt.UTC()
		return res, nil
	}
	if err != nil {
		return res, scheduleErr(fmt.Sprintf("seed schedule %q", sched.Name), err)
	}
	res.SeededAt = seededAt.UTC()
	_, err = s.create(ctx, tx, sched)
	switch {
	case errors.Is(err, ErrExists):
		res.Outcome = SeedExisting
	case err != nil:
		return res, fmt.Errorf("seed schedule %q: %w", sched.Name, err)
	default:
		res.Outcome = SeedCreated
	}
	return res, nil
}

// SeedHistory returns, by name, when each schedule Seed ever
// created (or found made by hand) was seeded, whether it still exists or
// not: a name here that List lacks is a default schedule an operator
// deleted, which seeding will not bring back. db may be a pool or a
// transaction.
func SeedHistory(ctx context.Context, db DB) (map[string]time.Time, error) {
	rows, err := db.Query(ctx, `SELECT name, seeded_at FROM wasso_schedule_seed`)
	if err != nil {
		return nil, scheduleErr("list seeded schedules", err)
	}
	seeded := map[string]time.Time{}
	var (
		name string
		at   time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&name, &at}, func() error {
		seeded[name] = at.UTC()
		return nil
	}); err != nil {
		return nil, scheduleErr("list seeded schedules", err)
	}
	return seeded, nil
}
