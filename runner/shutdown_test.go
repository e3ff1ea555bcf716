package runner_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
	"github.com/wasso/scheduler/runner"
)

// sweepAtOnce stores the attendance-sweep schedule that a runner run with
// --sweep-interval 1h would seed, but with its first slot now, for the
// tests that need the first sweep of a runner started after it. A runner
// seeds the schedule with its first slot two seconds at most after
// it computed it, and the store computes the first slot at or after that
// one as of when it creates the schedule: when the runner gets there
// after that second (a loaded machine, with luck a few milliseconds), the
// first sweep comes an hour later. A schedule stored before the runner
// starts is left as it is.
func sweepAtOnce(t *testing.T, db *wassotest.DB) {
	t.Helper()
	first := time.Now()
	store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds(), Now: func() time.Time { return first }})
	require.NoError(t, err)
	_, err = store.Create(context.Background(), db.Pool, schedule.Schedule{
		Name: wassoriver.SweepScheduleName, Kind: attendance.SweepKind, Every: time.Hour, StartAt: first, Enabled: true,
		Missed: schedule.MissedOnce, Overlap: schedule.OverlapSkip,
	})
	require.NoError(t, err)
}

// blockedSweep makes the first sweep of the runner started next
// long-running: with an event due, the sweep must write attendances, and
// the test holds a lock that blocks writes to that table until release
// is called. That sweep comes at once (sweepAtOnce).
func blockedSweep(t *testing.T, db *wassotest.DB) (eventID int64, release func()) {
	t.Helper()
	ctx := context.Background()
	sweepAtOnce(t, db)
	_, eventID = dueClub(t, db, 3)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE attendances IN EXCLUSIVE MODE`)
	require.NoError(t, err)
	released := false
	release = func() {
		if !released {
			released = true
			require.NoError(t, tx.Rollback(ctx))
		}
	}
	t.Cleanup(release)
	return eventID, release
}

// waitSweepBlocked waits until a sweep job is running and waiting for the
// test's lock, and returns its ID.
func waitSweepBlocked(t *testing.T, db *wassotest.DB) int64 {
	t.Helper()
	var jobID int64
	require.Eventually(t, func() bool {
		err := db.Pool.QueryRow(context.Background(), `SELECT id FROM river_job WHERE kind = 'attendance.sweep' AND state = 'running' ORDER BY id LIMIT 1`).Scan(&jobID)
		return err == nil
	}, time.Minute, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'attendances'::regclass`) > 0
	}, time.Minute, 50*time.Millisecond)
	return jobID
}

// requireNotLost checks that a job cut off by a shutdown is not stuck in
// running: River made it available again (interrupted) or retryable, or
// it completed. Then a new runner works it to completion and the event is
// settled.
func requireNotLost(t *testing.T, db *wassotest.DB, jobID, eventID int64) {
	t.Helper()
	state := jobState(t, db, jobID)
	t.Logf("job %d after shutdown: %s", jobID, state)
	require.Contains(t, []string{"available", "retryable", "completed"}, state, "job %d after shutdown", jobID)

	p := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", "1h")
	// A retryable job waits for its backoff (a second or so on the first
	// attempt); retry it now rather than wait.
	if state == "retryable" {
		res := runCLI(t, cliOpts{}, args([]string{"jobs", "retry", strconv.FormatInt(jobID, 10)}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
	}
	require.Eventually(t, func() bool { return jobState(t, db, jobID) == "completed" }, time.Minute, 100*time.Millisecond)
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, eventID))
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
}

// TestShutdownTimeoutDuringLongJob: SIGTERM while a sweep is stuck on a
// lock: the runner stops fetching, waits the shutdown timeout, cancels the
// job and exits 0 within the timeout plus the cancellation grace; the job
// is made available again and completes on the next runner.
func TestShutdownTimeoutDuringLongJob(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	eventID, release := blockedSweep(t, db)
	const timeout = 3 * time.Second
	p := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", "1h", "--shutdown-timeout", timeout.String())
	jobID := waitSweepBlocked(t, db)

	signalled := time.Now()
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
	require.Less(t, p.exited.Sub(signalled), timeout+runner.CancelGrace,
		"the process exits within the shutdown timeout plus the cancellation grace")
	p.waitLog(t, "shutdown timeout reached: cancelling running jobs (River retries them)", time.Second)
	p.waitLog(t, "wasso-runner stopped", time.Second)

	release()
	requireNotLost(t, db, jobID, eventID)
}

// TestShutdownFinishesRunningJob: a job that finishes within the shutdown
// timeout completes; nothing is cancelled.
func TestShutdownFinishesRunningJob(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	eventID, release := blockedSweep(t, db)
	p := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", "1h", "--shutdown-timeout", "1m")
	jobID := waitSweepBlocked(t, db)

	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, "shutting down: waiting for running jobs", time.Minute)
	// The runner is waiting for the job; let it finish.
	release()
	require.Equal(t, 0, p.wait(t, time.Minute))
	require.Equal(t, "completed", jobState(t, db, jobID))
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, eventID))
	for _, line := range p.logLines() {
		require.NotEqual(t, "shutdown timeout reached: cancelling running jobs (River retries them)", line["msg"])
	}
}

// TestShutdownSecondSignal: a second SIGTERM stops at once, long before a
// one-hour shutdown timeout, and the cut-off job is still not lost.
func TestShutdownSecondSignal(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	eventID, release := blockedSweep(t, db)
	p := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", "1h", "--shutdown-timeout", "1h")
	jobID := waitSweepBlocked(t, db)

	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, "shutting down: waiting for running jobs", time.Minute)
	p.signal(t, syscall.SIGINT)
	require.Equal(t, 0, p.wait(t, time.Minute), "exits on the second signal, not after the hour")
	p.waitLog(t, "second signal: cancelling running jobs now", time.Second)

	release()
	requireNotLost(t, db, jobID, eventID)
}
