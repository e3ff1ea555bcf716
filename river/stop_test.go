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
// and with NoSchedules it seeds nothing.
//
// The sweep interval is a second: the seeded schedule's first slot is the
// next whole second after the scheduler computed it, and when creating
// the schedule takes longer than what was left of that second (a loaded
// machine), the first sweep comes one interval later.
func TestNewClientSeedsTheSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, noSchedules := range []bool{false, true} {
		db := wassotest.NewDB(t, wassotest.Options{})
		client, err := wassoriver.NewClient(db.Pool, wassoriver.Config{Schema: db.Schema, NoSchedules: noSchedules, SweepInterval: time.Second})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		swept := func() int {
			var n int
			_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND metadata->>'schedule' = $1`, wassoriver.SweepScheduleName).Scan(&n)
			return n
		}
		if !noSchedules {
			wassotest.WaitFor(t, 30*time.Second, "a sweep from the seeded schedule", func() bool { return swept() > 0 })
			// Every sweep from the schedule, one per slot.
			var sweeps, fromSchedule, slots int
			require.NoError(t, db.Pool.QueryRow(ctx, `
				SELECT count(*), count(*) FILTER (WHERE metadata->>'schedule' = $1), count(DISTINCT metadata->>'slot')
				FROM river_job WHERE kind = 'attendance.sweep'`, wassoriver.SweepScheduleName).Scan(&sweeps, &fromSchedule, &slots))
			require.Equal(t, sweeps, fromSchedule, "every sweep from the seeded schedule")
			require.Equal(t, sweeps, slots, "one sweep per slot")
		} else {
			// A scheduler seeds before its first pass, at once when its
			// client leads; this client, leading, has none to do it.
			wassotest.WaitFor(t, 30*time.Second, "the client to lead", func() bool {
				var leaders int
				_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_leader`).Scan(&leaders)
				return leaders > 0
			})
		}
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, client.Stop(stopCtx))
		cancel()
		var schedules int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_schedule`).Scan(&schedules))
		require.Equal(t, map[bool]int{false: 1, true: 0}[noSchedules], schedules)
		if noSchedules {
			require.Zero(t, swept())
		}
	}
}
