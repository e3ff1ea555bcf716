package wassoriver_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

func TestMain(m *testing.M) { wassotest.Main(m) }

func TestConfigValidate(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		config wassoriver.Config
		want   string
	}{
		{wassoriver.Config{SweepInterval: -time.Minute}, "SweepInterval -1m0s must not be negative"},
		{wassoriver.Config{SweepInterval: time.Millisecond}, "SweepInterval 1ms is shorter than one second"},
		{wassoriver.Config{Lookback: -time.Hour}, "Lookback -1h0m0s must not be negative"},
		{wassoriver.Config{CompletedJobRetentionPeriod: -time.Hour}, "CompletedJobRetentionPeriod -1h0m0s must not be negative"},
		{wassoriver.Config{Concurrency: -1}, "Concurrency -1 must not be negative"},
		{wassoriver.Config{BurstLimit: -1}, "BurstLimit -1 must not be negative"},
		{wassoriver.Config{SweepParallel: -1}, "SweepParallel -1 must be between 0 (default) and 16"},
		{wassoriver.Config{SweepParallel: wassoriver.SweepParallelMax + 1}, "SweepParallel 17 must be between 0 (default) and 16"},
		{wassoriver.Config{Queues: map[string]int{"default": 0}}, `Queues "default" has 0 workers: must be between 1 and 10000`},
	} {
		require.ErrorIs(t, tc.config.Validate(), wassoriver.ErrInvalidConfig)
		// The field, for a caller that names its own setting.
		fieldErr, ok := errors.AsType[*wassoriver.ConfigFieldError](tc.config.Validate())
		require.True(t, ok)
		require.True(t, strings.HasPrefix(tc.want, fieldErr.Field+" "), "field %s of %q", fieldErr.Field, tc.want)
		require.ErrorContains(t, tc.config.Validate(), tc.want)
		_, err := wassoriver.NewClient(wassotest.AdminPool(t), tc.config)
		require.ErrorContains(t, err, tc.want, "NewClient validates too")
	}
	require.NoError(t, (&wassoriver.Config{}).Validate())
}

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()

	c := wassoriver.Config{}.WithDefaults()
	require.Equal(t, attendance.SweepIntervalDefault, c.SweepInterval)
	require.Equal(t, attendance.LookbackDefault, c.Lookback)
	require.Equal(t, map[string]int{river.QueueDefault: wassoriver.ConcurrencyDefault}, c.Queues)
	require.NotNil(t, c.Logger)
	require.Equal(t, attendance.BurstLimitDefault, c.BurstLimit)
	require.Equal(t, wassoriver.SweepParallelDefault, c.SweepParallel)

	c = wassoriver.Config{Concurrency: 9, SweepInterval: time.Minute, BurstLimit: 1, SweepParallel: 1}.WithDefaults()
	require.Equal(t, time.Minute, c.SweepInterval)
	require.Equal(t, 1, c.BurstLimit)
	require.Equal(t, 1, c.SweepParallel)
	require.Equal(t, map[string]int{river.QueueDefault: 9}, c.Queues)
}

func TestPeriodicJobs(t *testing.T) {
	t.Parallel()

	// With schedules (the default) the sweep is the stored schedule
	// attendance-sweep, not a River periodic job.
	jobs, err := wassoriver.PeriodicJobs(wassoriver.Config{})
	require.NoError(t, err)
	require.Empty(t, jobs)
	jobs, err = wassoriver.PeriodicJobs(wassoriver.Config{NoSchedules: true})
	require.NoError(t, err)
	require.Empty(t, jobs, "a client without schedules enqueues no sweeps")
}

// TestAddWorkers shows a backend's own client, with workers of its own,
// working the sweep once the attendance workers are added to it.
func TestAddWorkers(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	workers := river.NewWorkers()
	require.NoError(t, wassoriver.AddWorkers(workers, db.Pool, wassoriver.Config{}))
	err := wassoriver.AddWorkers(workers, db.Pool, wassoriver.Config{})
	require.ErrorContains(t, err, "register attendance.sweep worker")

	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Logger:  slog.New(slog.DiscardHandler),
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Schema:  db.Schema,
		Workers: workers,
	})
	require.NoError(t, err)
	completed, stop := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer stop()
	require.NoError(t, client.Start(ctx))
	defer client.Stop(ctx) //nolint:errcheck
	res, err := client.Insert(ctx, attendance.SweepArgs{}, nil)
	require.NoError(t, err)
	select {
	case ev := <-completed:
		require.Equal(t, res.Job.ID, ev.Job.ID)
		require.Equal(t, river.EventKindJobCompleted, ev.Kind)
	case <-time.After(30 * time.Second):
		t.Fatal("the sweep was not worked")
	}
}

// TestKinds checks Kinds against what AddWorkers registers: River refuses
// to insert a job of a kind its client has no worker for.
func TestKinds(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	args := map[string]river.JobArgs{
		attendance.SweepKind:        attendance.SweepArgs{},
		attendance.SettleEventKind:  attendance.SettleEventArgs{EventID: 1, Deadline: time.Now().UTC()},
		attendance.NotifyAbsentKind: attendance.NotifyAbsentArgs{EventID: 1},
	}
	for _, config := range []wassoriver.Config{{}, {NoDeadlines: true}, {NoNotify: true}, {NoDeadlines: true, NoNotify: true}} {
		workers := river.NewWorkers()
		require.NoError(t, wassoriver.AddWorkers(workers, db.Pool, config))
		client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema, Workers: workers})
		require.NoError(t, err)
		kinds := wassoriver.Kinds(config)
		for kind, a := range args {
			tx, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			_, err = client.InsertTx(ctx, tx, a, nil)
			require.NoError(t, tx.Rollback(ctx))
			if slices.Contains(kinds, kind) {
				require.NoError(t, err, "%+v: %s", config, kind)
			} else {
				require.Error(t, err, "%+v: %s is not registered", config, kind)
			}
		}
	}
}
