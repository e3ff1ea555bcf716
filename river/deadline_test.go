package wassoriver_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

func TestConfigDeadlines(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()

		c := wassoriver.Config{}.WithDefaults()
		require.Equal(t, wassoriver.ExactConcurrencyDefault, c.ExactConcurrency)
		require.Equal(t, wassoriver.ExactPollIntervalDefault, c.ExactPollInterval)
		require.Equal(t, wassoriver.DiscoveryIntervalDefault, c.DiscoveryInterval)
		require.Equal(t, attendance.DiscoveryHorizonDefault, c.DiscoveryHorizon)
		require.IsType(t, &attendance.LogNotifier{}, c.Notifier)

	})

	t.Run("ValidateNamesTheField", func(t *testing.T) {
		t.Parallel()

		for _, tc := range []struct {
			config wassoriver.Config
			want   string
		}{
			{wassoriver.Config{ExactPollInterval: time.Millisecond}, "ExactPollInterval 1ms must be between 10ms and 1s"},
			{wassoriver.Config{ExactPollInterval: 2 * time.Second}, "ExactPollInterval 2s must be between 10ms and 1s"},
			{wassoriver.Config{ExactConcurrency: -1}, "ExactConcurrency -1 must not be negative"},
			{wassoriver.Config{DiscoveryInterval: -time.Second}, "DiscoveryInterval -1s must not be negative"},
			{wassoriver.Config{DiscoveryInterval: time.Millisecond}, "DiscoveryInterval 1ms is shorter than 100ms"},
			{wassoriver.Config{DiscoveryHorizon: -time.Second}, "DiscoveryHorizon -1s must not be negative"},
			{wassoriver.Config{DiscoveryInterval: time.Minute, DiscoveryHorizon: time.Minute}, "DiscoveryHorizon 1m0s must be at least twice DiscoveryInterval"},
			{wassoriver.Config{NotifyTimeout: -time.Second}, "NotifyTimeout -1s must not be negative"},
		} {
			err := tc.config.Validate()
			require.ErrorIs(t, err, wassoriver.ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
		}
		// A discovery interval longer than the default horizon is caught
		// once the defaults apply.
		_, err := wassoriver.NewClient(wassotest.AdminPool(t), wassoriver.Config{DiscoveryInterval: 10 * time.Minute})
		require.ErrorContains(t, err, "DiscoveryHorizon 10m0s must be at least twice DiscoveryInterval (10m0s)")
	})
}

func TestAddWorkersKinds(t *testing.T) {
	t.Parallel()

	pool := wassotest.AdminPool(t)
	kinds := func(config wassoriver.Config) []string {
		workers := river.NewWorkers()
		require.NoError(t, wassoriver.AddWorkers(workers, pool, config))
		// Registering again fails naming the kind: the registry holds
		// exactly these.
		var got []string
		for _, kind := range []string{attendance.SweepKind, attendance.SettleEventKind, attendance.NotifyAbsentKind} {
			var err error
			switch kind {
			case attendance.SweepKind:
				w, _ := attendance.NewSweepWorker(pool, attendance.SweepConfig{})
				err = river.AddWorkerSafely(workers, w)
			case attendance.SettleEventKind:
				w, _ := attendance.NewSettleEventWorker(pool, attendance.SettleEventConfig{})
				err = river.AddWorkerSafely(workers, w)
			case attendance.NotifyAbsentKind:
				w, _ := attendance.NewNotifyAbsentWorker(pool, attendance.NotifyAbsentConfig{})
				err = river.AddWorkerSafely(workers, w)
			}
			if err != nil {
				got = append(got, kind)
			}
		}
		return got
	}
	require.Equal(t, []string{attendance.SweepKind, attendance.SettleEventKind, attendance.NotifyAbsentKind}, kinds(wassoriver.Config{}))
	require.Equal(t, []string{attendance.SweepKind}, kinds(wassoriver.Config{NoDeadlines: true, NoNotify: true}))
}

// TestNewClientSettlesAtDeadlines runs a client built by NewClient and checks that, as
// leader, it discovers an event written with plain SQL and settles it at
// its deadline, with the notice delivered to the configured Notifier.
func TestNewClientSettlesAtDeadlines(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	notices := make(chan attendance.AbsentNotice, 1)
	client, err := wassoriver.NewClient(db.Pool, wassoriver.Config{
		Schema:   db.Schema,
		Notifier: notifierFunc(func(_ context.Context, n attendance.AbsentNotice) error { notices <- n; return nil }),
	})
	require.NoError(t, err)
	wassotest.StartClient(t, client)

	club, err := seed.CreateClub(ctx, db.Pool, "Chess club", 2, time.Now())
	require.NoError(t, err)
	deadline := time.Now().Add(2 * time.Second)
	event, err := seed.CreateEvent(ctx, db.Pool, seed.Event{GenerationID: club.GenerationID, Title: "Weekly meeting", Start: deadline.Add(-10 * time.Minute), FailMinutes: 10}, time.Now())
	require.NoError(t, err)

	select {
	case n := <-notices:
		require.Equal(t, event, n.EventID)
		require.Equal(t, "Chess club", n.ClubName)
		require.Len(t, n.Members, 2)
		require.False(t, n.SettledAt.Before(deadline.Truncate(time.Microsecond)))
	case <-time.After(30 * time.Second):
		t.Fatal("no notice")
	}
}

// TestNewClientSettlesScheduledJobAtDeadline checks that a deadline a few
// seconds ahead waits as a scheduled job (not an available one) and is
// still settled at its deadline: the leader's discovery pass makes the job
// available just before its instant, and the exact queue's poll starts it.
func TestNewClientSettlesScheduledJobAtDeadline(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	notices := make(chan attendance.AbsentNotice, 1)
	club, err := seed.CreateClub(ctx, db.Pool, "Chess club", 2, time.Now())
	require.NoError(t, err)
	deadline := time.Now().Add(wassoriver.ExactPromoteAhead + 3*time.Second).Truncate(time.Microsecond)
	event, err := seed.CreateEvent(ctx, db.Pool, seed.Event{GenerationID: club.GenerationID, Title: "Weekly meeting", Start: deadline.Add(-10 * time.Minute), FailMinutes: 10}, time.Now())
	require.NoError(t, err)

	client, err := wassoriver.NewClient(db.Pool, wassoriver.Config{
		Schema:      db.Schema,
		NoSchedules: true,
		Notifier:    notifierFunc(func(_ context.Context, n attendance.AbsentNotice) error { notices <- n; return nil }),
	})
	require.NoError(t, err)
	// The backend schedules it (the leader's discovery would as well).
	res, err := attendance.ScheduleEvent(ctx, db.Pool, client, event)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateScheduled, res.Job.Job.State)
	wassotest.StartClient(t, client)

	// While it waits, the job shows as scheduled, until the leader makes
	// it available shortly before its deadline.
	state := func() string {
		var state string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1`, res.Job.Job.ID).Scan(&state))
		return state
	}
	if time.Until(deadline) > wassoriver.ExactPromoteAhead+time.Second {
		require.Equal(t, "scheduled", state())
	}

	select {
	case n := <-notices:
		require.Equal(t, event, n.EventID)
		require.False(t, n.SettledAt.Before(deadline), "settled at %s, before its deadline %s", n.SettledAt, deadline)
		t.Logf("settled %s after its deadline", n.SettledAt.Sub(deadline))
		// River's own scheduler alone could make the job available up to
		// five seconds late; the discovery pass makes it available ahead
		// and wakes the queue at its instant. The bound is generous, so
		// that a loaded machine does not fail it, and it is asserted, not
		// only logged, so that a change of ours or of River's that breaks
		// the exact-time fetch fails here instead of passing silently.
		require.Less(t, n.SettledAt.Sub(deadline), 3*time.Second)
	case <-time.After(30 * time.Second):
		t.Fatal("no notice")
	}
}

type notifierFunc func(ctx context.Context, n attendance.AbsentNotice) error

func (f notifierFunc) Notify(ctx context.Context, n attendance.AbsentNotice) error { return f(ctx, n) }
