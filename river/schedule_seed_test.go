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
	store, err := wassoriver.NewScheduleStore(wassoriver.ScheduleStoreConfig{Now: func() time.Time { return now }})
	require.NoError(t, err)
	defaults := func() []wassoriver.Schedule {
		return wassoriver.DefaultSchedules(wassoriver.Config{SweepInterval: time.Minute}, now)
	}

	// Runners starting together: one creates it, the others keep it.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[wassoriver.SeedOutcome]int{}
	)
	for range 4 {
		wg.Go(func() {
			seeded, err := wassoriver.SeedSchedules(ctx, db.Pool, store, defaults())
			require.NoError(t, err)
			require.Len(t, seeded, 1)
			mu.Lock()
			outcomes[seeded[0].Outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, map[wassoriver.SeedOutcome]int{wassoriver.SeedCreated: 1, wassoriver.SeedKept: 3}, outcomes)

	sweep, err := store.Get(ctx, db.Pool, wassoriver.SweepScheduleName)
	require.NoError(t, err)
	require.Equal(t, attendance.SweepKind, sweep.Kind)
	require.Equal(t, time.Minute, sweep.Every)
	require.True(t, sweep.Enabled)
	require.Equal(t, wassoriver.MissedOnce, sweep.Missed)
	require.Equal(t, wassoriver.OverlapSkip, sweep.Overlap)
	require.Equal(t, sweep.StartAt, sweep.NextRunAt, "the first sweep comes right after seeding")
	require.True(t, sweep.NextRunAt.After(now) && !sweep.NextRunAt.After(now.Add(time.Second)), "first sweep at %s, seeded at %s", sweep.NextRunAt, now)

	// Edited: seeding with another interval keeps the operator's.
	every := 7 * time.Minute
	_, err = store.Update(ctx, db.Pool, wassoriver.SweepScheduleName, wassoriver.ScheduleUpdate{Every: &every})
	require.NoError(t, err)
	seeded, err := wassoriver.SeedSchedules(ctx, db.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, wassoriver.SeedKept, seeded[0].Outcome)
	sweep, err = store.Get(ctx, db.Pool, wassoriver.SweepScheduleName)
	require.NoError(t, err)
	require.Equal(t, every, sweep.Every)

	// Deleted: it stays deleted.
	require.NoError(t, store.Delete(ctx, db.Pool, wassoriver.SweepScheduleName))
	seeded, err = wassoriver.SeedSchedules(ctx, db.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, wassoriver.SeedKept, seeded[0].Outcome)
	_, err = store.Get(ctx, db.Pool, wassoriver.SweepScheduleName)
	require.ErrorIs(t, err, wassoriver.ErrScheduleNotFound)

	// Made by hand before any seeding: left as it is.
	other := wassotest.NewDB(t, wassotest.Options{})
	_, err = store.Create(ctx, other.Pool, wassoriver.Schedule{Name: wassoriver.SweepScheduleName, Kind: attendance.SweepKind, Cron: "0 3 * * *"})
	require.NoError(t, err)
	seeded, err = wassoriver.SeedSchedules(ctx, other.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, wassoriver.SeedExisting, seeded[0].Outcome)
	sweep, err = store.Get(ctx, other.Pool, wassoriver.SweepScheduleName)
	require.NoError(t, err)
	require.Equal(t, "0 3 * * *", sweep.Cron)
	require.False(t, sweep.Enabled)
	seeded, err = wassoriver.SeedSchedules(ctx, other.Pool, store, defaults())
	require.NoError(t, err)
	require.Equal(t, wassoriver.SeedKept, seeded[0].Outcome)

	// A schedule the store refuses writes nothing, not even its record.
	bad := defaults()
	bad[0].Name, bad[0].Every = "too-fast", time.Millisecond
	_, err = wassoriver.SeedSchedules(ctx, db.Pool, store, bad)
	require.ErrorIs(t, err, wassoriver.ErrInvalidSchedule)
	require.Equal(t, 0, seedCountRows(t, db, `SELECT count(*) FROM wasso_schedule_seed WHERE name = 'too-fast'`))
}

func seedCountRows(t *testing.T, db *wassotest.DB, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}
