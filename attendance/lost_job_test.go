package attendance_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// TestDiscoverReplansLostJobs deletes a planned event's job, as an
// operator may from River UI or `wasso-runner jobs delete`: once the
// deadline is ten seconds past and the plan thirty seconds old, discovery
// inserts the job again, and no more than every thirty seconds.
func TestDiscoverReplansLostJobs(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := insertOnlyClient(t, db)
	club := goClub(t, db, 2)
	deadline := testNow.Add(time.Minute)
	event := djangoEvent(t, db.Pool, club.GenerationID, deadline)
	discoverAt := func(now time.Time) []attendance.DiscoveredEvent {
		var found []attendance.DiscoveredEvent
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			var err error
			found, err = attendance.DiscoverTx(ctx, tx, client, attendance.DiscoverParams{Now: now})
			return err
		}))
		return found
	}

	require.Len(t, discoverAt(testNow), 1)
	_, err := db.Pool.Exec(ctx, `DELETE FROM river_job WHERE kind = $1`, attendance.SettleEventKind)
	require.NoError(t, err)

	require.Empty(t, discoverAt(deadline.Add(5*time.Second)), "the job may still be running")
	found := discoverAt(deadline.Add(11 * time.Second))
	require.Equal(t, []int64{event}, eventIDs(found))
	require.Len(t, settleJobsOf(t, db.Pool, event), 1, "inserted again")
	require.Empty(t, discoverAt(deadline.Add(20*time.Second)), "not again before thirty seconds")
	// The job exists: planning again inserts no second one.
	require.Len(t, discoverAt(deadline.Add(45*time.Second)), 1)
	require.Len(t, settleJobsOf(t, db.Pool, event), 1)

	// Once settled, never again.
	_, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: deadline.Add(46 * time.Second)})
	require.NoError(t, err)
	require.Empty(t, discoverAt(deadline.Add(2*time.Minute)))
}

func eventIDs(found []attendance.DiscoveredEvent) []int64 {
	ids := make([]int64, len(found))
	for i, f := range found {
		ids[i] = f.EventID
	}
	return ids
}

// TestSettleEventRetriedEarly works an exact-deadline job long before its
// deadline, as it runs once River UI's retry button has made it available:
// the job waits for the deadline (snoozed until then) instead of
// completing and leaving the event to the sweep.
func TestSettleEventRetriedEarly(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	deadline := dbNow(t, db.Pool).Add(time.Hour).Truncate(time.Microsecond)
	club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, deadline.Add(-2*time.Hour))
	require.NoError(t, err)
	event := djangoEvent(t, db.Pool, club.GenerationID, deadline)
	worker, err := attendance.NewSettleEventWorker(db.Pool, attendance.SettleEventConfig{})
	require.NoError(t, err)

	res, err := workJob(t, db, worker, attendance.NewSettleEventArgs(event, deadline), nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
	require.Equal(t, rivertype.JobStateScheduled, res.Job.State)
	require.WithinDuration(t, deadline, res.Job.ScheduledAt, time.Second, "snoozed until its deadline")
	_, settled := settlementOf(t, db.Pool, event)
	require.False(t, settled)
}
