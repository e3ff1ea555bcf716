package attendance_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// TestSweepWorker works single sweep jobs through rivertest: what is
// checked is the worker's result, not how a client fetches the job.
func TestSweepWorker(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	sweep := func(t *testing.T, db *wassotest.DB, config attendance.SweepConfig, args attendance.SweepArgs, opts *river.InsertOpts) (*rivertest.WorkResult, error) {
		t.Helper()
		worker, err := attendance.NewSweepWorker(db.Pool, config)
		require.NoError(t, err)
		return workJob(t, db, worker, args, opts)
	}
	jsonLogger := func(logs *wassotest.SyncBuffer) *slog.Logger { return slog.New(slog.NewJSONHandler(logs, nil)) }

	t.Run("RecordsCountsAsOutputAndLogs", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		now := time.Now()
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 3, now.Add(-time.Hour))
		require.NoError(t, err)
		event, err := seed.CreateEvent(ctx, db.Pool, seed.Event{GenerationID: club.GenerationID, Title: "Due", Start: now.Add(-time.Hour), FailMinutes: 30}, now.Add(-2*time.Hour))
		require.NoError(t, err)
		_, err = seed.AddAttendance(ctx, db.Pool, event, club.MappingIDs[0], unchecked, now.Add(-time.Hour))
		require.NoError(t, err)

		logs := &wassotest.SyncBuffer{}
		res, err := sweep(t, db, attendance.SweepConfig{Logger: jsonLogger(logs)}, attendance.SweepArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		var out attendance.SweepOutput
		require.NoError(t, json.Unmarshal(res.Job.Output(), &out))
		require.Equal(t, attendance.SweepOutput{CreatedRows: 2, ProcessedEvents: 1, UpdatedRows: 1}, out)
		require.Contains(t, logs.String(), `"msg":"attendance sweep"`)
		require.Contains(t, logs.String(), `"processed_events":1,"updated_rows":1,"created_rows":2`)
	})

	t.Run("ParallelSettlesABacklogOnce", func(t *testing.T) {
		t.Parallel()

		// 30 due events in batches of 4 with two batches in flight:
		// every event is settled once, in one batch whose follow-up ran.
		db := wassotest.NewDB(t, wassotest.Options{})
		now := time.Now()
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 3, now.Add(-48*time.Hour))
		require.NoError(t, err)
		for i := range 30 {
			_, err := seed.CreateEvent(ctx, db.Pool, seed.Event{GenerationID: club.GenerationID, Title: "Due", Start: now.Add(-time.Hour - time.Duration(i)*time.Minute), FailMinutes: 30}, now.Add(-2*time.Hour))
			require.NoError(t, err)
		}
		var (
			mu       sync.Mutex
			inBatch  = map[int64]int{}
			batches  int
			maxBatch int
		)
		res, err := sweep(t, db, attendance.SweepConfig{BatchSize: 4, Parallel: 2, FollowUp: func(ctx context.Context, tx pgx.Tx, batch *attendance.SettleResult) error {
			mu.Lock()
			defer mu.Unlock()
			batches++
			maxBatch = max(maxBatch, batch.ProcessedEvents)
			for _, ev := range batch.Events {
				inBatch[ev.EventID]++
			}
			return nil
		}}, attendance.SweepArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		var out attendance.SweepOutput
		require.NoError(t, json.Unmarshal(res.Job.Output(), &out))
		require.Equal(t, attendance.SweepOutput{ProcessedEvents: 30, CreatedRows: 90}, out)

		mu.Lock()
		defer mu.Unlock()
		require.Len(t, inBatch, 30)
		for id, n := range inBatch {
			require.Equal(t, 1, n, "event %d settled in one batch", id)
		}
		require.LessOrEqual(t, maxBatch, 4)
		require.GreaterOrEqual(t, batches, 8)
		var settledOnce, dupRows int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_settlement WHERE settle_count = 1`).Scan(&settledOnce))
		require.Equal(t, 30, settledOnce)
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM attendances GROUP BY event_id, generation_mapping_id HAVING count(*) > 1) d`).Scan(&dupRows))
		require.Zero(t, dupRows)
	})

	t.Run("InvalidArgsCancelTheJobVisibly", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		res, err := sweep(t, db, attendance.SweepConfig{}, attendance.SweepArgs{Lookback: -time.Hour}, nil)
		require.NoError(t, err, "a cancellation is not an error to retry")
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, rivertype.JobStateCancelled, res.Job.State)
		require.Len(t, res.Job.Errors, 1)
		require.Contains(t, res.Job.Errors[0].Error, "lookback -1h0m0s must not be negative")
	})

	t.Run("MissingSchemaFailsTheJob", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		_, err := db.Pool.Exec(ctx, `DROP TABLE wasso_settlement`)
		require.NoError(t, err)
		logs := &wassotest.SyncBuffer{}
		res, err := sweep(t, db, attendance.SweepConfig{Logger: jsonLogger(logs)}, attendance.SweepArgs{}, &river.InsertOpts{MaxAttempts: 1})
		require.ErrorContains(t, err, `relation "wasso_settlement" does not exist`)
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		require.Equal(t, rivertype.JobStateDiscarded, res.Job.State, "its only attempt failed")
		require.Contains(t, res.Job.Errors[0].Error, `relation "wasso_settlement" does not exist`)
		require.Contains(t, logs.String(), `"msg":"attendance sweep failed"`)
	})
}

func TestNewSweepWorker(t *testing.T) {
	t.Parallel()

	db := wassotest.NewDB(t, wassotest.Options{Bare: true})
	for _, tc := range []struct {
		config attendance.SweepConfig
		want   string
	}{
		{attendance.SweepConfig{BatchSize: -1}, "batch size -1 must not be negative"},
		{attendance.SweepConfig{Lookback: -time.Second}, "lookback -1s must not be negative"},
		{attendance.SweepConfig{Timeout: -time.Second}, "timeout -1s must not be negative"},
		{attendance.SweepConfig{Parallel: -1}, "parallel -1 must not be negative"},
	} {
		_, err := attendance.NewSweepWorker(db.Pool, tc.config)
		require.ErrorIs(t, err, attendance.ErrInvalidParams)
		require.ErrorContains(t, err, tc.want)
	}
	_, err := attendance.NewSweepWorker(nil, attendance.SweepConfig{})
	require.ErrorContains(t, err, "database is nil")
}

// TestPeriodicSweep checks the schedule PeriodicSweep gives a real client
// (River keeps a periodic job's schedule unexported, so the test watches
// the jobs the leader enqueues): a sweep at once when the client leads,
// then one every interval, each scheduled on its slot and unique for its
// period.
func TestPeriodicSweep(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("InvalidInterval", func(t *testing.T) {
		t.Parallel()

		_, err := attendance.PeriodicSweep(-5 * time.Minute)
		require.ErrorIs(t, err, attendance.ErrInvalidParams)
		require.ErrorContains(t, err, "sweep interval -5m0s must be positive")
		_, err = attendance.PeriodicSweep(500 * time.Millisecond)
		require.ErrorIs(t, err, attendance.ErrInvalidParams)
		require.ErrorContains(t, err, "shorter than one second")
	})

	// sweepsEnqueued starts a client whose only periodic job is
	// PeriodicSweep(interval) and waits until the leader has enqueued n
	// sweeps, which it returns oldest first. The client works only a
	// queue the sweeps do not go to (it must work one to start and lead),
	// so they stay as enqueued.
	sweepsEnqueued := func(t *testing.T, interval time.Duration, n int) (*river.Client[pgx.Tx], []*rivertype.JobRow) {
		t.Helper()
		db := wassotest.NewDB(t, wassotest.Options{})
		periodic, err := attendance.PeriodicSweep(interval)
		require.NoError(t, err)
		worker, err := attendance.NewSweepWorker(db.Pool, attendance.SweepConfig{})
		require.NoError(t, err)
		workers := river.NewWorkers()
		river.AddWorker(workers, worker)
		client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
			Logger:       slog.New(slog.DiscardHandler),
			PeriodicJobs: []*river.PeriodicJob{periodic},
			Queues:       map[string]river.QueueConfig{"unused": {MaxWorkers: 1}},
			Schema:       db.Schema,
			Workers:      workers,
		})
		require.NoError(t, err)
		wassotest.StartClient(t, client)
		var jobs []*rivertype.JobRow
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			res, err := client.JobList(ctx, river.NewJobListParams().Kinds(attendance.SweepKind).OrderBy(river.JobListOrderByID, river.SortOrderAsc))
			require.NoError(c, err)
			require.GreaterOrEqual(c, len(res.Jobs), n, "sweeps enqueued")
			jobs = res.Jobs
		}, 30*time.Second, 20*time.Millisecond)
		return client, jobs
	}

	t.Run("OnStartUniquePerPeriod", func(t *testing.T) {
		t.Parallel()

		// With an hour's interval, a sweep within seconds of the start is
		// the one enqueued on start.
		client, jobs := sweepsEnqueued(t, time.Hour, 1)
		require.Len(t, jobs, 1)
		job := jobs[0]
		require.Equal(t, river.QueueDefault, job.Queue)
		require.JSONEq(t, `{}`, string(job.EncodedArgs), "the zero SweepArgs: the worker's lookback")
		var meta struct {
			Periodic bool   `json:"periodic"`
			ID       string `json:"river:periodic_job_id"`
		}
		require.NoError(t, json.Unmarshal(job.Metadata, &meta))
		require.True(t, meta.Periodic)
		require.Equal(t, attendance.PeriodicSweepID, meta.ID)

		// Unique per period: another sweep for the same slot, unique by
		// the hour, is a duplicate of it.
		dup, err := client.Insert(ctx, attendance.SweepArgs{}, &river.InsertOpts{
			ScheduledAt: job.ScheduledAt,
			UniqueOpts:  river.UniqueOpts{ByPeriod: time.Hour},
		})
		require.NoError(t, err)
		require.True(t, dup.UniqueSkippedAsDuplicate)
		require.Equal(t, job.ID, dup.Job.ID)
	})

	t.Run("EveryInterval", func(t *testing.T) {
		t.Parallel()

		// River schedules each run from the previous slot, not from the
		// moment it ran, so the slots are exactly one interval apart.
		_, jobs := sweepsEnqueued(t, time.Second, 3)
		for i := 1; i < len(jobs); i++ {
			require.Equal(t, time.Second, jobs[i].ScheduledAt.Sub(jobs[i-1].ScheduledAt), "slot of sweep %d", i)
		}
	})
}
