package runner_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

// TestTwoRunnersOneSweepPerInterval: two runners on one database for two
// minutes with a two-second sweep interval enqueue exactly one sweep per
// interval: every two seconds one job, none doubled, none missing. Both
// runners seed the attendance-sweep schedule (the first creates it, the
// second finds it seeded) and take part in leader election; only the
// leader's scheduler enqueues.
//
// The sweeps' slots prove it: each job's metadata carries the slot it was
// enqueued for, and the slots of the stored schedule are exactly two
// seconds apart. A second enqueuer would double a slot (the slot table
// refuses it), and a missed or skipped slot would break the spacing.
// (Before the sweep was a stored schedule, River's periodic enqueuer
// scheduled each run exactly one interval after the previous one, and the
// test read scheduled_at; a stored schedule's job is scheduled when it is
// inserted, a few milliseconds after its slot.)
func TestTwoRunnersOneSweepPerInterval(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("takes two minutes")
	}
	const (
		interval = 2 * time.Second
		duration = 2 * time.Minute
	)
	db := wassotest.NewDB(t, wassotest.Options{})
	a := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", interval.String())
	b := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", interval.String())

	// Run for the duration; both runners must stay up throughout.
	select {
	case <-a.done:
		t.Fatalf("runner a exited early (code %d)", a.code)
	case <-b.done:
		t.Fatalf("runner b exited early (code %d)", b.code)
	case <-time.After(duration):
	}
	a.signal(t, syscall.SIGTERM)
	b.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, a.wait(t, time.Minute))
	require.Equal(t, 0, b.wait(t, time.Minute))

	rows, err := db.Pool.Query(context.Background(), `
		SELECT (metadata->>'slot')::timestamptz, state::text, attempted_by FROM river_job
		WHERE kind = 'attendance.sweep' AND metadata->>'schedule' = 'attendance-sweep' ORDER BY 1`)
	require.NoError(t, err)
	type sweep struct {
		Slot        time.Time
		State       string
		AttemptedBy []string
	}
	sweeps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sweep])
	require.NoError(t, err)

	// About one per interval over the run (the first election takes a
	// moment after start).
	expected := int(duration / interval)
	require.GreaterOrEqual(t, len(sweeps), expected-5, "sweeps: %d", len(sweeps))
	require.LessOrEqual(t, len(sweeps), expected+1, "sweeps: %d", len(sweeps))
	workers := map[string]bool{}
	for i, s := range sweeps {
		if i > 0 {
			gap := s.Slot.Sub(sweeps[i-1].Slot)
			require.Equal(t, interval, gap, "sweep %d is %s after the previous one, want exactly one per %s", i, gap, interval)
		}
		// Every sweep ran (the last may have been cut off by the stop and
		// made available again).
		if i < len(sweeps)-1 {
			require.Equal(t, "completed", s.State, "sweep %d", i)
		}
		for _, w := range s.AttemptedBy {
			workers[w] = true
		}
	}
	require.Equal(t, len(sweeps), count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep'`), "every sweep came from the schedule")
	t.Logf("%d sweeps over %s, %s apart, worked by %d runner(s)", len(sweeps), duration, interval, len(workers))

}
