package attendance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// syncBuffer is a log sink shared by the worker goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startClient starts a real River client working the sweep on db.
func startClient(t *testing.T, db *wassotest.DB, logs *syncBuffer) *river.Client[pgx.Tx] {
	t.Helper()
	return startClientWith(t, db, attendance.SweepConfig{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
}

// startClientWith starts a real River client working the sweep on db with
// the given worker configuration.
func startClientWith(t *testing.T, db *wassotest.DB, config attendance.SweepConfig) *river.Client[pgx.Tx] {
	t.Helper()
	worker, err := attendance.NewSweepWorker(db.Pool, config)
	require.NoError(t, err)
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Logger:  slog.New(slog.DiscardHandler),
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		Schema:  db.Schema,
		Workers: workers,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	return client
}

// waitJob waits for the job to reach a final state and returns it.
func waitJob(t *testing.T, client *river.Client[pgx.Tx], id int64) *rivertype.JobRow {
	t.Helper()
	var job *rivertype.JobRow
	require.Eventually(t, func() bool {
		var err error
		job, err = client.JobGet(context.Background(), id)
		require.NoError(t, err)
		return job.FinalizedAt != nil
	}, 30*time.Second, 20*time.Millisecond)
	return job
}

func TestSweepWorker(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

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

		logs := &syncBuffer{}
		client := startClient(t, db, logs)
		inserted, err := client.Insert(ctx, attendance.SweepArgs{}, nil)
		require.NoError(t, err)
		job := waitJob(t, client, inserted.Job.ID)
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		var out attendance.SweepOutput
		require.NoError(t, json.Unmarshal(job.Output(), &out))
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
		client := startClientWith(t, db, attendance.SweepConfig{BatchSize: 4, Parallel: 2, FollowUp: func(ctx context.Context, tx pgx.Tx, batch *attendance.SettleResult) error {
			mu.Lock()
			defer mu.Unlock()
			batches++
			maxBatch = max(maxBatch, batch.ProcessedEvents)
			for _, ev := range batch.Events {
				inBatch[ev.EventID]++
			}
			return nil
		}})
		inserted, err := client.Insert(ctx, attendance.SweepArgs{}, nil)
		require.NoError(t, err)
		job := waitJob(t, client, inserted.Job.ID)
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		var out attendance.SweepOutput
		require.NoError(t, json.Unmarshal(job.Output(), &out))
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
		client := startClient(t, db, &syncBuffer{})
		inserted, err := client.Insert(ctx, attendance.SweepArgs{Lookback: -time.Hour}, nil)
		require.NoError(t, err)
		job := waitJob(t, client, inserted.Job.ID)
		require.Equal(t, rivertype.JobStateCancelled, job.State)
		require.Len(t, job.Errors, 1)
		require.Contains(t, job.Errors[0].Error, "lookback -1h0m0s must not be negative")
	})

	t.Run("MissingSchemaFailsTheJob", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		logs := &syncBuffer{}
		client := startClient(t, db, logs)
		_, err := db.Pool.Exec(ctx, `DROP TABLE wasso_settlement`)
		require.NoError(t, err)
		inserted, err := client.Insert(ctx, attendance.SweepArgs{}, &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)
		job := waitJob(t, client, inserted.Job.ID)
		require.Equal(t, rivertype.JobStateDiscarded, job.State)
		require.Contains(t, job.Errors[0].Error, `relation "wasso_settlement" does not exist`)
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

func TestPeriodicSweep(t *testing.T) {
	t.Parallel()

	_, err := attendance.PeriodicSweep(-5 * time.Minute)
	require.ErrorIs(t, err, attendance.ErrInvalidParams)
	require.ErrorContains(t, err, "sweep interval -5m0s must be positive")
	_, err = attendance.PeriodicSweep(500 * time.Millisecond)
	require.ErrorContains(t, err, "shorter than one second")
	job, err := attendance.PeriodicSweep(0)
	require.NoError(t, err)
	require.NotNil(t, job)
}
