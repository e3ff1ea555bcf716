package wassoriver_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// TestClientStopWaitsForLeaderLoops starts a client, waits until it leads
// and runs its deadline discovery, and stops it: when Stop returns, the
// discovery loop has already returned (its last log line is written), and
// once the pool is closed no goroutine of the client is left. It does not
// run in parallel, so that goleak sees only this test's goroutines.
func TestClientStopWaitsForLeaderLoops(t *testing.T) {
	db := wassotest.NewDB(t, wassotest.Options{})
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db.URL)
	require.NoError(t, err)
	logs := &wassotest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client logs:\n%s", logs.String())
		}
	})
	client, err := wassoriver.NewClient(pool, wassoriver.Config{
		Schema: db.Schema,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	wassotest.WaitFor(t, 30*time.Second, "the client to lead and start its deadline discovery", func() bool {
		return strings.Contains(logs.String(), "deadline discovery started")
	})

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, client.Stop(stopCtx))
	require.Contains(t, logs.String(), "deadline discovery stopped", "Stop returned before the discovery loop did")
	pool.Close()
	goleak.VerifyNone(t, ignore)
}

// TestNewClientSeedsTheSweep: a client built by NewClient, on its own,
// seeds the attendance-sweep schedule once it leads and sweeps from it,
// as River's in-memory periodic sweep used to; with NoPeriodic it seeds
// nothing.
//
// The sweep interval is a second: the seeded schedule's first slot is the
// next whole second after the scheduler computed it, and when creating
// the schedule takes longer than what was left of that second (a loaded
// machine), the first sweep comes one interval later.
//
// With NoPeriodic, a witness schedule, due every second, shows that the
// scheduler has run: the scheduler seeds before each pass until it has
// seeded, so once a pass has enqueued the witness's job, a seeding would
// have been committed.
func TestNewClientSeedsTheSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, noPeriodic := range []bool{false, true} {
		db := wassotest.NewDB(t, wassotest.Options{})
		if noPeriodic {
			store, err := wassoriver.NewScheduleStore(wassoriver.ScheduleStoreConfig{})
			require.NoError(t, err)
			_, err = store.Create(ctx, db.Pool, wassoriver.Schedule{Name: "witness", Kind: attendance.SweepKind, Every: time.Second, Enabled: true})
			require.NoError(t, err)
		}
		client, err := wassoriver.NewClient(db.Pool, wassoriver.Config{Schema: db.Schema, NoPeriodic: noPeriodic, SweepInterval: time.Second})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		jobsOf := func(schedule string) int {
			var n int
			_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND metadata->>'schedule' = $1`, schedule).Scan(&n)
			return n
		}
		swept := func() int { return jobsOf(wassoriver.SweepScheduleName) }
		if !noPeriodic {
			wassotest.WaitFor(t, 30*time.Second, "a sweep from the seeded schedule", func() bool { return swept() > 0 })
			// Every sweep from the schedule, one per slot.
			var sweeps, fromSchedule, slots int
			require.NoError(t, db.Pool.QueryRow(ctx, `
				SELECT count(*), count(*) FILTER (WHERE metadata->>'schedule' = $1), count(DISTINCT metadata->>'slot')
				FROM river_job WHERE kind = 'attendance.sweep'`, wassoriver.SweepScheduleName).Scan(&sweeps, &fromSchedule, &slots))
			require.Equal(t, sweeps, fromSchedule, "every sweep from the seeded schedule")
			require.Equal(t, sweeps, slots, "one sweep per slot")
		} else {
			wassotest.WaitFor(t, 30*time.Second, "a scheduler pass (the witness schedule's job)", func() bool { return jobsOf("witness") > 0 })
			require.Zero(t, swept())
		}
		var schedules int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_schedule WHERE name = $1`, wassoriver.SweepScheduleName).Scan(&schedules))
		require.Equal(t, map[bool]int{false: 1, true: 0}[noPeriodic], schedules)
		var seeded int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_schedule_seed`).Scan(&seeded))
		require.Equal(t, map[bool]int{false: 1, true: 0}[noPeriodic], seeded, "seeding records")
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, client.Stop(stopCtx))
		cancel()
	}
}
