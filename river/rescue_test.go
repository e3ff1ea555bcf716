package wassoriver_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// TestConfigRescueStuckJobsAfter: the rescue delay is derived from the
// longest job timeout, an explicit one is kept, and one that would let
// River retry a job still running is refused.
func TestConfigRescueStuckJobsAfter(t *testing.T) {
	t.Parallel()

	t.Run("Derived", func(t *testing.T) {
		t.Parallel()

		for _, tc := range []struct {
			config      wassoriver.Config
			longest     time.Duration
			rescueAfter time.Duration
		}{
			{wassoriver.Config{}, time.Minute, 2 * time.Minute},
			{wassoriver.Config{SweepTimeout: 5 * time.Minute}, 5 * time.Minute, 6 * time.Minute},
			{wassoriver.Config{JobTimeout: 10 * time.Second, NotifyTimeout: 3 * time.Minute}, 3 * time.Minute, 4 * time.Minute},
			{wassoriver.Config{JobTimeout: 10 * time.Second}, 10 * time.Second, 70 * time.Second},
			// A kind this client does not work still counts: the leader
			// rescues every client's jobs.
			{wassoriver.Config{JobTimeout: 10 * time.Second, NotifyTimeout: time.Hour, NoNotify: true}, time.Hour, time.Hour + time.Minute},
			{wassoriver.Config{RescueStuckJobsAfter: 90 * time.Second}, time.Minute, 90 * time.Second},
		} {
			c := tc.config.WithDefaults()
			require.Equal(t, tc.longest, c.LongestJobTimeout(), "%+v", tc.config)
			require.Equal(t, tc.rescueAfter, c.RescueStuckJobsAfter, "%+v", tc.config)
			require.NoError(t, c.Validate())
		}
		c := wassoriver.Config{}.WithDefaults()
		require.Equal(t, river.JobTimeoutDefault, c.JobTimeout)
		require.Equal(t, wassoriver.JobTimeoutDefault+wassoriver.RescueStuckJobsMargin, c.RescueStuckJobsAfter)
	})

	t.Run("ValidateRefusesRescueBeforeTimeout", func(t *testing.T) {
		t.Parallel()

		for _, tc := range []struct {
			config wassoriver.Config
			want   string
		}{
			{wassoriver.Config{RescueStuckJobsAfter: 30 * time.Second}, "RescueStuckJobsAfter 30s is shorter than the longest job timeout (1m0s)"},
			{wassoriver.Config{RescueStuckJobsAfter: 5 * time.Minute, SweepTimeout: 10 * time.Minute}, "RescueStuckJobsAfter 5m0s is shorter than the longest job timeout (10m0s)"},
			{wassoriver.Config{RescueStuckJobsAfter: 5 * time.Second, JobTimeout: 10 * time.Second}, "RescueStuckJobsAfter 5s is shorter than the longest job timeout (10s)"},
			{wassoriver.Config{RescueStuckJobsAfter: -time.Second}, "RescueStuckJobsAfter -1s must not be negative"},
			{wassoriver.Config{JobTimeout: -1}, "JobTimeout -1ns must not be negative"},
		} {
			err := tc.config.Validate()
			require.ErrorIs(t, err, wassoriver.ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
			_, err = wassoriver.NewClient(wassotest.AdminPool(t), tc.config)
			require.ErrorContains(t, err, tc.want, "NewClient validates too")
		}
		// As long as the longest timeout is allowed.
		require.NoError(t, (&wassoriver.Config{RescueStuckJobsAfter: time.Minute}).Validate())
	})
}

// TestClientRescuesStuckJob: a client built by NewClient hands
// RescueStuckJobsAfter to River. A sweep left running by a client that
// died (attempted_by names a client that is gone) is retried once it has
// run longer than the delay, not after River's default hour, and then
// completes.
func TestClientRescuesStuckJob(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	insertOnly, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	require.NoError(t, err)
	res, err := insertOnly.Insert(ctx, attendance.SweepArgs{}, nil)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = now() - interval '20 seconds', attempted_by = '{dead-client}' WHERE id = $1`, res.Job.ID)
	require.NoError(t, err)

	client, err := wassoriver.NewClient(db.Pool, wassoriver.Config{
		JobTimeout:           5 * time.Second,
		NoSchedules:          true,
		RescueStuckJobsAfter: 10 * time.Second,
		Schema:               db.Schema,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	var job *rivertype.JobRow
	require.Eventually(t, func() bool {
		job, err = client.JobGet(ctx, res.Job.ID)
		return err == nil && job.State == rivertype.JobStateCompleted
	}, time.Minute, 100*time.Millisecond, "the stuck sweep is rescued and worked")
	require.Equal(t, 2, job.Attempt)
	require.Equal(t, []string{"dead-client", client.ID()}, job.AttemptedBy)
	require.Len(t, job.Errors, 1)
	require.Equal(t, "Stuck job rescued by JobRescuer", job.Errors[0].Error)
}
