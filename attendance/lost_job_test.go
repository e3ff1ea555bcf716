package attendance_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
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
	club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, testNow.Add(-48*time.Hour))
	require.NoError(t, err)
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
	_, err = db.Pool.Exec(ctx, `DELETE FROM river_job WHERE kind = $1`, attendance.SettleEventKind)
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

// TestSettleEventRetriedEarly retries an exact-deadline job by hand long
// before its deadline, as River UI's retry button does: the job waits for
// the deadline instead of completing and leaving the event to the sweep.
func TestSettleEventRetriedEarly(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := startRunner(t, db, wassoriver.Config{NoNotify: true})
	var now time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now))
	club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, now.Add(-time.Hour))
	require.NoError(t, err)
	event := djangoEvent(t, db.Pool, club.GenerationID, now.Add(time.Hour))
	scheduled, err := attendance.ScheduleEvent(ctx, db.Pool, client, event)
	require.NoError(t, err)
	jobs := settleJobsOf(t, db.Pool, event)
	require.Len(t, jobs, 1)

	_, err = client.JobRetry(ctx, jobs[0].ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		job, err := client.JobGet(ctx, jobs[0].ID)
		require.NoError(t, err)
		return job.State == "scheduled"
	}, 30*time.Second, 20*time.Millisecond)
	job, err := client.JobGet(ctx, jobs[0].ID)
	require.NoError(t, err)
	require.WithinDuration(t, scheduled.Deadline, job.ScheduledAt, time.Second, "snoozed until its deadline")
	_, settled := settlementOf(t, db.Pool, event)
	require.False(t, settled)
}
