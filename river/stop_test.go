package wassoriver_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// lockedBuffer is a log sink safe for the client's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

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
	logs := &lockedBuffer{}
	client, err := wassoriver.NewClient(pool, wassoriver.Config{
		Schema: db.Schema,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "deadline discovery started") {
		require.True(t, time.Now().Before(deadline), "the client never led:\n%s", logs.String())
		time.Sleep(20 * time.Millisecond)
	}

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
func TestNewClientSeedsTheSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, noPeriodic := range []bool{false, true} {
		db := wassotest.NewDB(t, wassotest.Options{})
		client, err := wassoriver.NewClient(db.Pool, wassoriver.Config{Schema: db.Schema, NoPeriodic: noPeriodic, SweepInterval: time.Hour})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		swept := func() int {
			var n int
			_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND metadata->>'schedule' = $1`, wassoriver.SweepScheduleName).Scan(&n)
			return n
		}
		if !noPeriodic {
			deadline := time.Now().Add(30 * time.Second)
			for swept() == 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			require.Equal(t, 1, swept(), "one sweep, from the seeded schedule, at once")
		} else {
			// The client leads and its scheduler would have seeded by now.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				var leaders int
				_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_leader`).Scan(&leaders)
				if leaders > 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			require.Zero(t, swept())
		}
		var schedules int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_schedule`).Scan(&schedules))
		require.Equal(t, map[bool]int{false: 1, true: 0}[noPeriodic], schedules)
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, client.Stop(stopCtx))
		cancel()
	}
}
