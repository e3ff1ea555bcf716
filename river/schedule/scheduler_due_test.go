package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

// TestSchedulerSlotDueDuringPass: a pass that begins just before a slot and
// ends after it (here held up by a pool whose connections the test holds)
// must not leave the slot to the next poll, an hour away.
func TestSchedulerSlotDueDuringPass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSchedulerFixture(t, StoreConfig{PollInterval: time.Hour, Now: time.Now})
	slot := time.Now().Add(3 * time.Second)
	f.create(t, Schedule{Name: "other", Every: EveryMax, StartAt: time.Now().Add(time.Hour), Overlap: OverlapAllow})
	f.create(t, Schedule{Name: "due", Every: EveryMax, StartAt: slot, Overlap: OverlapAllow})
	require.NoError(t, f.sched.Start(ctx, nil))
	defer f.sched.Stop()
	wassotest.WaitFor(t, 10*time.Second, "the scheduler to listen", func() bool { return f.sched.listenerPID.Load() != 0 })
	other, err := pgxpool.New(ctx, f.db.URL)
	require.NoError(t, err)
	defer other.Close()

	// Hold every connection of the scheduler's pool, wake the loop (a
	// NOTIFY) 50 ms before the slot, and release the pool 200 ms after it.
	time.Sleep(time.Until(slot.Add(-500 * time.Millisecond)))
	var held []*pgxpool.Conn
	for range int(f.db.Pool.Config().MaxConns) {
		c, err := f.db.Pool.Acquire(ctx)
		require.NoError(t, err)
		held = append(held, c)
	}
	time.Sleep(time.Until(slot.Add(-50 * time.Millisecond)))
	_, err = other.Exec(ctx, `UPDATE wasso_schedule SET description = 'poke' WHERE name = 'other'`)
	require.NoError(t, err)
	time.Sleep(time.Until(slot.Add(200 * time.Millisecond)))
	for _, c := range held {
		c.Release()
	}
	wassotest.WaitFor(t, 10*time.Second, "the job of the due slot", func() bool { return len(f.jobSlots(t, "due")) == 1 })
}
