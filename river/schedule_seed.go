package wassoriver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wasso/scheduler/attendance"
)

// SweepScheduleName is the name of the stored schedule that enqueues the
// attendance sweep, the one default schedule (see DefaultSchedules).
const SweepScheduleName = "attendance-sweep"

// DefaultSchedules returns the schedules a deployment starts with, to be
// given to SeedSchedules: the attendance sweep (SweepScheduleName), every
// config.SweepInterval (attendance.SweepIntervalDefault when zero), with
// MissedOnce (one sweep after an outage, not one per slot missed) and
// OverlapSkip (no second sweep while one is still running).
//
// Its StartAt is the whole second after now, which anchors its slots: the
// first falls right after it is seeded, so that a new deployment sweeps at
// once (as River's periodic sweep did on start), and the others every
// interval after that. Call it just before SeedSchedules: a seeding that
// starts after StartAt has passed gets its first sweep one interval later.
func DefaultSchedules(config Config, now time.Time) []Schedule {
	interval := config.WithDefaults().SweepInterval
	return []Schedule{{
		Name:        SweepScheduleName,
		Kind:        attendance.SweepKind,
		Every:       interval,
		Enabled:     true,
		StartAt:     now.Truncate(time.Second).Add(time.Second),
		Missed:      MissedOnce,
		Overlap:     OverlapSkip,
		Description: "Settle every event whose check-in deadline has passed (the Celery task mark_absent_for_past_events).",
	}}
}

// SeedOutcome says what SeedSchedules did with one schedule.
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

// SeededSchedule is what SeedSchedules did with one schedule.
type SeededSchedule struct {
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

// SeedSchedules creates each of schedules that was never seeded before,
// each in a transaction of its own with its record in wasso_schedule_seed,
// and returns what it did, in the order given. A schedule seeded once is
// never written again, so that seeding at every start (wasso-runner run
// does) never undoes an operator's edits and never brings back a
// schedule that was disabled or deleted. Errors: a *ScheduleFieldError
// for a schedule the store refuses (nothing of it is written; the
// schedules before it are seeded), or a database error.
func SeedSchedules(ctx context.Context, db attendance.Beginner, store *ScheduleStore, schedules []Schedule) ([]SeededSchedule, error) {
	out := make([]SeededSchedule, 0, len(schedules))
	for _, sched := range schedules {
		seeded, err := scheduleTx(ctx, db, func(tx pgx.Tx) (SeededSchedule, error) {
			return store.seed(ctx, tx, sched)
		})
		if err != nil {
			return out, err
		}
		out = append(out, seeded)
	}
	return out, nil
}

func (s *ScheduleStore) seed(ctx context.Context, tx pgx.Tx, sched Schedule) (SeededSchedule, error) {
	res := SeededSchedule{Name: sched.Name}
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
	case errors.Is(err, ErrScheduleExists):
		res.Outcome = SeedExisting
	case err != nil:
		return res, fmt.Errorf("seed schedule %q: %w", sched.Name, err)
	default:
		res.Outcome = SeedCreated
	}
	return res, nil
}

// SeededSchedules returns, by name, when each schedule SeedSchedules ever
// created (or found made by hand) was seeded, whether it still exists or
// not: a name here that List lacks is a default schedule an operator
// deleted, which seeding will not bring back. db may be a pool or a
// transaction.
func SeededSchedules(ctx context.Context, db attendance.DB) (map[string]time.Time, error) {
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
