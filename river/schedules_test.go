package wassoriver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// TestSeedSchedules: the default sweep is created by the first seeding
// only. Edited, disabled or deleted afterwards, it stays as the operator
// left it however often seeding runs again; a schedule of the same name
// made by hand before any seeding is left alone and recorded as seeded.
// Concurrent seedings (runners starting together) create it once.
func TestSeedSchedules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	// The store's clock and the defaults' are one instant, so that the
	// default's first slot (the next whole second) is still ahead when
	// the store creates it, however long the seeding takes.
	now := time.Now()
	store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds(), Now: func() time.Time { return now }})
	require.NoError(t, err)
	defaults := func() []schedule.Schedule {
		return wassoriver.DefaultSchedules(wassoriver.Config{SweepInterval: time.Minute}, now)
	}

	// Runners starting together: one creates it, the others keep it.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[schedule.SeedOutcome]int{}
	)
	for range 4 {
		wg.Go(func() {
			seeded, err := schedule.Seed(ctx, db.Pool, store, defaults())
			require.NoError(t, err)
			require.Len(t, seeded, 1)
			mu.Lock()
			outcomes[seeded[0].Outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, map[schedule.SeedOutcome]int{schedule.SeedCreated: 1, schedule.SeedKept: 3}, outcomes)

	sweep, err := store.Get(ctx, db.Pool, wassoriver.SweepScheduleName)
	require.NoError(t, err)
	require.Equal(t, attendance.SweepKind, sweep.Kind)
	require.Equal(t, time.Minute, sweep.Every)
	require.True(t, sweep.Enabled)
	require.Equal(t, schedule.MissedOnce, sweep.Missed)
	require.Equal(t, schedule.OverlapSkip, sweep.Overlap)
	require.Equal(t, sweep.StartAt, sweep.NextRunAt, "the first sweep comes right after seeding")
	require.True(t, sweep.NextRunAt.After(now) && !sweep.NextRunAt.After(now.Add(2*time.Second)), "first sweep at %s, seeded at %s", sweep.NextRunAt, now)

	// Edited: seeding with another interval keeps the operator's.
	every := 7 * time.Minute
	_, err = store.Update(ctx, db.Pool, wassoriver.SweepScheduleName, schedule.Update{Every: &every})
	require.NoError(t, err)
	seeded, err := schedule.Seed(ctx, db.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, schedule.SeedKept, seeded[0].Outcome)
	sweep, err = store.Get(ctx, db.Pool, wassoriver.SweepScheduleName)
	require.NoError(t, err)
	require.Equal(t, every, sweep.Every)

	// Deleted: it stays deleted.
	require.NoError(t, store.Delete(ctx, db.Pool, wassoriver.SweepScheduleName))
	seeded, err = schedule.Seed(ctx, db.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, schedule.SeedKept, seeded[0].Outcome)
	_, err = store.Get(ctx, db.Pool, wassoriver.SweepScheduleName)
	require.ErrorIs(t, err, schedule.ErrNotFound)

	// Made by hand before any seeding: left as it is.
	other := wassotest.NewDB(t, wassotest.Options{})
	_, err = store.Create(ctx, other.Pool, schedule.Schedule{Name: wassoriver.SweepScheduleName, Kind: attendance.SweepKind, Cron: "0 3 * * *"})
	require.NoError(t, err)
	seeded, err = schedule.Seed(ctx, other.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, schedule.SeedExisting, seeded[0].Outcome)
	sweep, err = store.Get(ctx, other.Pool, wassoriver.SweepScheduleName)
	require.NoError(t, err)
	require.Equal(t, "0 3 * * *", sweep.Cron)
	require.False(t, sweep.Enabled)
	seeded, err = schedule.Seed(ctx, other.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, schedule.SeedKept, seeded[0].Outcome)

	// A schedule the store refuses writes nothing, not even its record.
	bad := defaults()
	bad[0].Name, bad[0].Every = "too-fast", time.Millisecond
	_, err = schedule.Seed(ctx, db.Pool, store, bad)
	require.ErrorIs(t, err, schedule.ErrInvalidSchedule)
	require.Equal(t, 0, seedCountRows(t, db, `SELECT count(*) FROM wasso_schedule_seed WHERE name = 'too-fast'`))
}

func seedCountRows(t *testing.T, db *wassotest.DB, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}
