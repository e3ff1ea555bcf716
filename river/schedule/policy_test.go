package schedule

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// setJobState moves a job as a worker would: running (attempted by a
// test client), or finished in state.
func (f *schedulerFixture) setJobState(t *testing.T, id int64, state string) {
	t.Helper()
	var err error
	switch state {
	case "running":
		_, err = f.db.Pool.Exec(context.Background(),
			`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = '{test}' WHERE id = $1`, id)
	case "retryable":
		_, err = f.db.Pool.Exec(context.Background(),
			`UPDATE river_job SET state = 'retryable', attempt = 1, attempted_at = now(), scheduled_at = now() + interval '1 hour',
			 errors = array_append(errors, '{"at": "2030-01-01T00:00:00Z", "attempt": 1, "error": "boom", "trace": ""}'::jsonb) WHERE id = $1`, id)
	default:
		_, err = f.db.Pool.Exec(context.Background(),
			`UPDATE river_job SET state = $2::river_job_state, finalized_at = now() WHERE id = $1`, id, state)
	}
	require.NoError(t, err)
}

// jobState reads a job's state.
func (f *schedulerFixture) jobState(t *testing.T, id int64) string {
	t.Helper()
	var state string
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&state))
	return state
}

// TestPolicyBufferOne: while the previous job runs, the slots that come
// due leave one run waiting (the latest), the others counted skipped; the
// waiting slot is enqueued by the first pass after the job finished, and
// never while it runs.
func TestPolicyBufferOne(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "b", Every: time.Minute, Overlap: OverlapBufferOne})

	require.Equal(t, 1, f.pass(t, base).Enqueued)
	first := f.get(t, "b").LastJobID
	f.setJobState(t, first, "running")

	res := f.pass(t, base.Add(time.Minute))
	require.Zero(t, res.Enqueued, "the job runs: the slot waits")
	s := f.get(t, "b")
	require.Equal(t, base.Add(time.Minute), s.BufferedSlot)
	require.Zero(t, s.SkippedCount)
	require.Equal(t, base.Add(2*time.Minute), s.NextRunAt)
	require.True(t, f.sched.buffering.Load(), "the loop looks again soon")

	// Another slot while it still runs: it takes the waiting one's place.
	res = f.pass(t, base.Add(2*time.Minute))
	require.Zero(t, res.Enqueued)
	s = f.get(t, "b")
	require.Equal(t, base.Add(2*time.Minute), s.BufferedSlot)
	require.Equal(t, int64(1), s.SkippedCount, "the slot replaced is counted skipped")

	// A pass between slots, the job still running: nothing.
	require.Zero(t, f.pass(t, base.Add(2*time.Minute+10*time.Second)).Enqueued)

	f.setJobState(t, first, "completed")
	res = f.pass(t, base.Add(2*time.Minute+20*time.Second))
	require.Equal(t, 1, res.Enqueued, "the waiting slot runs once the job finished")
	s = f.get(t, "b")
	require.True(t, s.BufferedSlot.IsZero())
	require.Equal(t, base.Add(2*time.Minute), s.LastRunAt)
	require.Equal(t, slotStrings(base, 2*time.Minute, 0, 1), f.jobSlots(t, "b"))
	require.False(t, f.sched.buffering.Load())

	// Finished before the next slot: it runs at once, as usual.
	f.setJobState(t, s.LastJobID, "completed")
	require.Equal(t, 1, f.pass(t, base.Add(3*time.Minute)).Enqueued)
	require.Equal(t, []string{FormatSlot(base), FormatSlot(base.Add(2 * time.Minute)), FormatSlot(base.Add(3 * time.Minute))}, f.jobSlots(t, "b"))
	require.Equal(t, int64(3), f.get(t, "b").TotalRunCount)

	// Disabling drops the waiting slot: enabling later runs nothing extra.
	f.setJobState(t, f.get(t, "b").LastJobID, "running")
	f.pass(t, base.Add(4*time.Minute))
	require.Equal(t, base.Add(4*time.Minute), f.get(t, "b").BufferedSlot)
	ctx := context.Background()
	_, err := f.store.Disable(ctx, f.db.Pool, "b")
	require.NoError(t, err)
	require.True(t, f.get(t, "b").BufferedSlot.IsZero(), "disabling drops the waiting slot")
}

// TestPolicyCancelOther: a slot that comes due while the previous job has
// not finished cancels it through River and is enqueued.
func TestPolicyCancelOther(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "c", Every: time.Minute, Overlap: OverlapCancelOther})

	require.Equal(t, 1, f.pass(t, base).Enqueued)
	first := f.get(t, "c").LastJobID
	// Waiting in the queue: cancelled at once.
	res := f.pass(t, base.Add(time.Minute))
	require.Equal(t, 1, res.Enqueued)
	require.Equal(t, "cancelled", f.jobState(t, first))
	second := f.get(t, "c").LastJobID
	require.NotEqual(t, first, second)

	// Running: River marks it for cancellation; its worker's context is
	// cancelled (the real-process test covers the worker's side).
	f.setJobState(t, second, "running")
	res = f.pass(t, base.Add(2*time.Minute))
	require.Equal(t, 1, res.Enqueued)
	var cancelAttempted bool
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT metadata ? 'cancel_attempted_at' FROM river_job WHERE id = $1`, second).Scan(&cancelAttempted))
	require.True(t, cancelAttempted, "River recorded the cancellation of the running job")
	require.Equal(t, slotStrings(base, time.Minute, 0, 2), f.jobSlots(t, "c"))

	// Finished: nothing to cancel.
	third := f.get(t, "c").LastJobID
	f.setJobState(t, third, "completed")
	require.Equal(t, 1, f.pass(t, base.Add(3*time.Minute)).Enqueued)
	require.Equal(t, "completed", f.jobState(t, third))
}

// TestPolicyCatchupWindow: after an outage, slots older than the window
// are counted missed and never run, whatever the missed policy; slots
// within it run by the policy. Without a window, the default rules hold.
func TestPolicyCatchupWindow(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{MaxCatchUp: 100})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "all-10m", Every: time.Minute, Missed: MissedAll, CatchupWindow: 10 * time.Minute})
	f.create(t, Schedule{Name: "all", Every: time.Minute, Missed: MissedAll})
	f.create(t, Schedule{Name: "once-10m", Every: time.Minute, CatchupWindow: 10 * time.Minute})
	f.create(t, Schedule{Name: "once-30s", Every: time.Minute, CatchupWindow: 30 * time.Second})
	f.create(t, Schedule{Name: "skip-5m", Every: time.Hour, Missed: MissedSkip, CatchupWindow: 5 * time.Minute})
	f.create(t, Schedule{Name: "skip", Every: time.Hour, Missed: MissedSkip})

	// An outage of an hour and 45 s: slots 0..60 of the minute schedules
	// passed, slot 0 of the hourly ones 1h45s ago and slot 1 45 s ago.
	now := base.Add(time.Hour + 45*time.Second)
	f.pass(t, now)

	require.Equal(t, slotStrings(base, time.Minute, 51, 60), f.jobSlots(t, "all-10m"), "the slots within the last 10 minutes")
	require.Equal(t, int64(51), f.get(t, "all-10m").MissedCount)
	require.Equal(t, slotStrings(base, time.Minute, 0, 60), f.jobSlots(t, "all"), "no window: every slot (up to MaxCatchUp)")
	require.Equal(t, slotStrings(base, time.Minute, 60, 60), f.jobSlots(t, "once-10m"))
	require.Empty(t, f.jobSlots(t, "once-30s"), "the latest slot is 45 s old, past the 30 s window")
	require.Equal(t, int64(61), f.get(t, "once-30s").MissedCount)
	require.Equal(t, base.Add(61*time.Minute), f.get(t, "once-30s").NextRunAt)
	require.Empty(t, f.jobSlots(t, "skip-5m"), "two slots due: the scheduler fell behind")
	require.Empty(t, f.jobSlots(t, "skip"))

	// A single slot 4 minutes late: on time within a 5-minute window, late
	// past the default grace of a minute.
	f.create(t, Schedule{Name: "skip-5m-late", Every: time.Hour, Missed: MissedSkip, CatchupWindow: 5 * time.Minute,
		StartAt: base.Add(2 * time.Hour)})
	f.create(t, Schedule{Name: "skip-late", Every: time.Hour, Missed: MissedSkip, StartAt: base.Add(2 * time.Hour)})
	f.pass(t, base.Add(2*time.Hour+4*time.Minute))
	require.Equal(t, []string{FormatSlot(base.Add(2 * time.Hour))}, f.jobSlots(t, "skip-5m-late"))
	require.Empty(t, f.jobSlots(t, "skip-late"))
}

// TestPolicyJitter: each slot's job is scheduled at slot + a delay under
// the jitter, the same for the same slot, recorded in its metadata; a
// jitter as long as the interval is refused.
func TestPolicyJitter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "j", Every: time.Minute, Jitter: 30 * time.Second, Overlap: OverlapAllow})

	var delays []time.Duration
	for i := range 5 {
		slot := base.Add(time.Duration(i) * time.Minute)
		require.Equal(t, 1, f.pass(t, slot).Enqueued)
		var (
			scheduledAt time.Time
			meta        []byte
		)
		require.NoError(t, f.db.Pool.QueryRow(ctx, `SELECT scheduled_at, metadata FROM river_job WHERE id = $1`, f.get(t, "j").LastJobID).Scan(&scheduledAt, &meta))
		delay := scheduledAt.Sub(slot)
		require.GreaterOrEqual(t, delay, time.Duration(0))
		require.Less(t, delay, 30*time.Second)
		require.Equal(t, jitterDelay("j", slot, 30*time.Second), delay, "the delay is the slot's own")
		var m map[string]string
		require.NoError(t, json.Unmarshal(meta, &m))
		require.Equal(t, durationString(delay), m["jitter"], "metadata records the delay")
		require.Equal(t, FormatSlot(slot), m["slot"])
		delays = append(delays, delay)
	}
	require.NotEqual(t, delays[0], delays[1], "slots get different delays")
	require.Equal(t, jitterDelay("j", base, 30*time.Second), jitterDelay("j", base, 30*time.Second))
	require.NotEqual(t, jitterDelay("j", base, 30*time.Second), jitterDelay("k", base, 30*time.Second), "schedules get different delays")

	_, err := f.store.Create(ctx, f.db.Pool, Schedule{Name: "too-much", Kind: "attendance.sweep", Every: time.Minute, Jitter: time.Minute, Enabled: true})
	require.ErrorIs(t, err, ErrInvalidSchedule)
	require.ErrorContains(t, err, "jitter")
	_, err = f.store.Create(ctx, f.db.Pool, Schedule{Name: "cron-too-much", Kind: "attendance.sweep", Cron: "0 * * * *", Jitter: 2 * time.Hour, Enabled: true})
	require.ErrorContains(t, err, "shorter than the 1h0m0s between the schedule's slots")
}

// TestPolicyPauseAfterFailures: a schedule whose last N jobs all failed
// pauses itself when it next comes due, with a note by the scheduler; one
// success among them keeps it running.
func TestPolicyPauseAfterFailures(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "p", Every: time.Minute, PauseAfterFailures: 2, Overlap: OverlapAllow})

	require.Equal(t, 1, f.pass(t, base).Enqueued)
	f.setJobState(t, f.get(t, "p").LastJobID, "discarded")
	require.Equal(t, 1, f.pass(t, base.Add(time.Minute)).Enqueued, "one failure of two")
	f.setJobState(t, f.get(t, "p").LastJobID, "completed")
	require.Equal(t, 1, f.pass(t, base.Add(2*time.Minute)).Enqueued, "a success resets it")
	f.setJobState(t, f.get(t, "p").LastJobID, "retryable")
	require.Equal(t, 1, f.pass(t, base.Add(3*time.Minute)).Enqueued, "one failure again")
	last := f.get(t, "p").LastJobID
	f.setJobState(t, last, "discarded")

	res := f.pass(t, base.Add(4*time.Minute))
	require.Zero(t, res.Enqueued, "paused instead")
	s := f.get(t, "p")
	require.False(t, s.Enabled)
	require.True(t, s.NextRunAt.IsZero())
	require.NotNil(t, s.Paused)
	require.Equal(t, PausedByScheduler, s.Paused.By)
	require.Contains(t, s.Paused.Note, "paused after its last 2 jobs failed")
	require.Equal(t, base.Add(4*time.Minute), s.Paused.At)
	require.Equal(t, 4, len(f.jobSlots(t, "p")))

	// Enabling resumes at the next slot from now, without an extra run.
	f.setNow(base.Add(10*time.Minute + 30*time.Second))
	_, err := f.store.Enable(context.Background(), f.db.Pool, "p")
	require.NoError(t, err)
	require.Zero(t, f.pass(t, base.Add(10*time.Minute+31*time.Second)).Enqueued)
	require.Equal(t, base.Add(11*time.Minute), f.get(t, "p").NextRunAt)
	require.Nil(t, f.get(t, "p").Paused)
}

// TestEditNeverFiresExtraRun: editing a schedule, changing its timetable,
// disabling and enabling it, at any moment between slots, never enqueues
// a job outside its slots: the next pass enqueues nothing until the next
// slot comes, and then one job.
func TestEditNeverFiresExtraRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "e", Every: time.Hour})
	f.create(t, Schedule{Name: "c", Cron: "0 12 * * *", TimeZone: "Asia/Seoul"})
	require.Equal(t, 1, f.pass(t, base).Enqueued, "e's first slot")

	at := base.Add(20 * time.Minute)
	for _, step := range []struct {
		name   string
		update Update
	}{
		{"description", Update{Description: ptrTo("edited")}},
		{"args", Update{Args: ptrTo(json.RawMessage(`{}`))}},
		{"interval", Update{Every: ptrTo(30 * time.Minute)}},
		{"cron", Update{Cron: ptrTo("*/15 * * * *")}},
		{"zone", Update{TimeZone: ptrTo("Europe/Berlin")}},
		{"disable", Update{Enabled: ptrTo(false)}},
		{"enable", Update{Enabled: ptrTo(true)}},
		{"overlap", Update{Overlap: ptrTo(OverlapBufferOne)}},
		{"window", Update{CatchupWindow: ptrTo(time.Hour)}},
		{"back to hourly", Update{Every: ptrTo(time.Hour)}},
	} {
		at = at.Add(time.Second)
		f.setNow(at)
		for _, name := range []string{"e", "c"} {
			_, err := f.store.Update(ctx, f.db.Pool, name, step.update)
			require.NoError(t, err, "%s: %s", name, step.name)
		}
		res := f.pass(t, at.Add(time.Millisecond))
		require.Zero(t, res.Enqueued, "after the %s edit at %s", step.name, at)
	}
	require.Equal(t, 1, len(f.jobSlots(t, "e")))
	require.Empty(t, f.jobSlots(t, "c"))
	require.Equal(t, base.Add(time.Hour), f.get(t, "e").NextRunAt, "the next slot, not now")
	require.Equal(t, base.Add(time.Hour), f.get(t, "c").NextRunAt, "the next slot, not now")
	f.setJobState(t, f.get(t, "e").LastJobID, "completed") // or buffer_one would make the slot wait
	require.Equal(t, 2, f.pass(t, base.Add(time.Hour)).Enqueued, "the next slot runs, once each")
	require.Equal(t, []string{FormatSlot(base), FormatSlot(base.Add(time.Hour))}, f.jobSlots(t, "e"))
	require.Equal(t, []string{FormatSlot(base.Add(time.Hour))}, f.jobSlots(t, "c"))
}
