package schedule

// These tests are inside the package so that they can run a pass at a
// chosen instant (runPass) instead of sleeping until it comes.

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// schedulerFixture is a schema with a store, a scheduler on the schema's
// pool, and the clock the store reads.
type schedulerFixture struct {
	db    *wassotest.DB
	store *Store
	sched *Scheduler
	now   atomic.Pointer[time.Time]
}

func newSchedulerFixture(t testing.TB, config StoreConfig) *schedulerFixture {
	t.Helper()
	f := &schedulerFixture{db: wassotest.NewDB(t, wassotest.Options{})}
	client, err := river.NewClient(riverpgxv5.New(f.db.Pool), &river.Config{Schema: f.db.Schema})
	require.NoError(t, err)
	config.Inserter = client
	if config.Kinds == nil {
		config.Kinds = []Kind{NewKind(attendance.SweepArgs{})}
	}
	if config.Now == nil {
		config.Now = func() time.Time { return *f.now.Load() }
	}
	f.setNow(time.Now())
	f.store, err = NewStore(config)
	require.NoError(t, err)
	f.sched, err = NewScheduler(f.db.Pool, f.store)
	require.NoError(t, err)
	return f
}

func (f *schedulerFixture) setNow(t time.Time) { f.now.Store(&t) }

func (f *schedulerFixture) create(t testing.TB, s Schedule) *Schedule {
	t.Helper()
	if s.Kind == "" {
		s.Kind = attendance.SweepKind
	}
	s.Enabled = true
	created, err := f.store.Create(context.Background(), f.db.Pool, s)
	require.NoError(t, err)
	return created
}

func (f *schedulerFixture) get(t *testing.T, name string) *Schedule {
	t.Helper()
	s, err := f.store.Get(context.Background(), f.db.Pool, name)
	require.NoError(t, err)
	return s
}

func (f *schedulerFixture) pass(t *testing.T, now time.Time) *PassResult {
	t.Helper()
	res, err := f.sched.runPass(context.Background(), now)
	require.NoError(t, err)
	return res
}

// jobSlots returns the slot of each job of the schedule, by job id.
func (f *schedulerFixture) jobSlots(t *testing.T, name string) []string {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(),
		`SELECT metadata->>'slot' FROM river_job WHERE metadata->>'schedule' = $1 ORDER BY id`, name)
	require.NoError(t, err)
	slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return slots
}

func slotStrings(base time.Time, every time.Duration, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, FormatSlot(base.Add(time.Duration(i)*every)))
	}
	return out
}

// TestSchedulerExactlyOnce runs two schedulers, on two pools, at the same
// instants, concurrently, through 30 slots of a 2-second schedule: every
// slot has exactly one job.
func TestSchedulerExactlyOnce(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "two-seconds", Every: 2 * time.Second, Overlap: OverlapAllow})

	poolB, err := pgxpool.New(ctx, f.db.URL)
	require.NoError(t, err)
	defer poolB.Close()
	other, err := NewScheduler(poolB, f.store)
	require.NoError(t, err)

	const slots = 30
	var enqueued atomic.Int64
	for i := range slots {
		slot := base.Add(time.Duration(i) * 2 * time.Second)
		// Each scheduler runs two passes at the slot and one just after.
		var wg sync.WaitGroup
		for _, s := range []*Scheduler{f.sched, other, f.sched, other} {
			wg.Go(func() {
				for _, now := range []time.Time{slot, slot, slot.Add(500 * time.Millisecond)} {
					res, err := s.runPass(ctx, now)
					if err != nil {
						t.Errorf("pass at %s: %v", now, err)
						return
					}
					enqueued.Add(int64(res.Enqueued))
				}
			})
		}
		wg.Wait()
	}
	require.Equal(t, slotStrings(base, 2*time.Second, 0, slots-1), f.jobSlots(t, "two-seconds"),
		"one job per slot, none missing, none twice")
	require.Equal(t, int64(slots), enqueued.Load())
	s := f.get(t, "two-seconds")
	require.Equal(t, int64(slots), s.TotalRunCount)
	require.Zero(t, s.MissedCount)
	require.Equal(t, base.Add(slots*2*time.Second), s.NextRunAt)
	var rows int
	require.NoError(t, f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_schedule_slot WHERE source = 'schedule'`).Scan(&rows))
	require.Equal(t, slots, rows)
}

// TestSchedulerMissed: a scheduler that was down for ten slots of a
// 2-minute schedule comes back; what each missed policy enqueues.
func TestSchedulerMissed(t *testing.T) {
	t.Parallel()

	const every = 2 * time.Minute
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		policy     MissedPolicy
		maxCatchUp int
		// back is when the scheduler comes back, after slot 0 ran.
		back   time.Duration
		want   []string // jobs after slot 0's
		missed int64
	}{
		// Slot 10 is 90 s old: past its grace (1 minute).
		{"OnceLate", MissedOnce, 0, 10*every + 90*time.Second, slotStrings(base, every, 10, 10), 9},
		{"SkipLate", MissedSkip, 0, 10*every + 90*time.Second, nil, 10},
		{"AllLate", MissedAll, 0, 10*every + 90*time.Second, slotStrings(base, every, 1, 10), 0},
		{"AllCapped", MissedAll, 4, 10*every + 90*time.Second, slotStrings(base, every, 7, 10), 6},
		// Slot 10 is 100 ms old: on time, but ten slots before it were
		// missed, so skip runs none and resumes at slot 11.
		{"OnceOnTime", MissedOnce, 0, 10*every + 100*time.Millisecond, slotStrings(base, every, 10, 10), 9},
		{"SkipOnTime", MissedSkip, 0, 10*every + 100*time.Millisecond, nil, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			f := newSchedulerFixture(t, StoreConfig{MaxCatchUp: tc.maxCatchUp})
			f.setNow(base.Add(-time.Second))
			f.create(t, Schedule{Name: "s", Every: every, Missed: tc.policy, Overlap: OverlapAllow})
			res := f.pass(t, base.Add(time.Second))
			require.Equal(t, 1, res.Enqueued)

			res = f.pass(t, base.Add(tc.back))
			require.Equal(t, len(tc.want), res.Enqueued)
			require.Equal(t, int(tc.missed), res.Missed)
			require.Equal(t, append(slotStrings(base, every, 0, 0), tc.want...), f.jobSlots(t, "s"))
			s := f.get(t, "s")
			require.Equal(t, tc.missed, s.MissedCount)
			require.Equal(t, int64(1+len(tc.want)), s.TotalRunCount)
			require.Equal(t, base.Add(11*every), s.NextRunAt, "resumes at the next future slot")

			res = f.pass(t, base.Add(11*every))
			require.Equal(t, 1, res.Enqueued, "back on time")
		})
	}
}

// TestSchedulerMissedPastGrace: the only slot due, when the pass comes
// late. A slot is on time until min(MissedGrace, the gap to the
// following slot) after it: a 90-second schedule's slot 65 s old is past
// its grace (a minute), and runs late under once and is missed under skip
// (resuming at the following slot); 35 s old, it is on time and runs
// under skip too. (TestScheduleMissedSkipPastGrace in runner/ shows the
// same through a runner process.)
func TestSchedulerMissedPastGrace(t *testing.T) {
	t.Parallel()

	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		policy MissedPolicy
		every  time.Duration
		late   time.Duration // how long after the slot the pass comes
		run    bool
	}{
		{"OncePastGrace", MissedOnce, 90 * time.Second, 65 * time.Second, true},
		{"SkipPastGrace", MissedSkip, 90 * time.Second, 65 * time.Second, false},
		{"SkipWithinGrace", MissedSkip, 90 * time.Second, 35 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			f := newSchedulerFixture(t, StoreConfig{})
			f.setNow(base.Add(-time.Second))
			created := f.create(t, Schedule{Name: "s", Every: tc.every, StartAt: base, Missed: tc.policy, Overlap: OverlapAllow})
			require.Equal(t, base, created.NextRunAt)

			res := f.pass(t, base.Add(tc.late))
			s := f.get(t, "s")
			require.Equal(t, base.Add(tc.every), s.NextRunAt, "resumes at the following slot")
			if tc.run {
				require.Equal(t, 1, res.Enqueued)
				require.Zero(t, res.Missed)
				require.Equal(t, []string{FormatSlot(base)}, f.jobSlots(t, "s"), "the slot runs, late")
				require.Zero(t, s.MissedCount)
			} else {
				require.Zero(t, res.Enqueued)
				require.Equal(t, 1, res.Missed)
				require.Empty(t, f.jobSlots(t, "s"))
				require.Equal(t, int64(1), s.MissedCount)
			}
		})
	}
}

// TestSchedulerOverlap: with OverlapSkip, a slot whose previous job has
// not finished is skipped and counted; once it has, slots run again.
func TestSchedulerOverlap(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "s", Every: time.Minute})
	f.create(t, Schedule{Name: "allow", Every: time.Minute, Overlap: OverlapAllow})

	require.Equal(t, 2, f.pass(t, base).Enqueued)
	first := f.get(t, "s").LastJobID
	_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = '{test}' WHERE id = $1`, first)
	require.NoError(t, err)

	res := f.pass(t, base.Add(time.Minute))
	require.Equal(t, 1, res.Skipped, "s skipped: its job is running")
	require.Equal(t, 1, res.Enqueued, "allow enqueued")
	s := f.get(t, "s")
	require.Equal(t, int64(1), s.SkippedCount)
	require.Equal(t, first, s.LastJobID)
	require.Equal(t, base.Add(2*time.Minute), s.NextRunAt, "a skipped slot is not retried")

	_, err = f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1`, first)
	require.NoError(t, err)
	res = f.pass(t, base.Add(2*time.Minute))
	require.Zero(t, res.Skipped)
	require.Equal(t, 2, res.Enqueued)
	require.Equal(t, slotStrings(base, time.Minute, 0, 2), f.jobSlots(t, "allow"))
	require.Equal(t, []string{FormatSlot(base), FormatSlot(base.Add(2 * time.Minute))}, f.jobSlots(t, "s"))

	stats, err := f.store.Stats(ctx, f.db.Pool)
	require.NoError(t, err)
	require.Equal(t, []Stats{
		{Name: "allow", Kind: attendance.SweepKind, Enabled: true, Runs: 3, LastRunAt: base.Add(2 * time.Minute), NextRunAt: base.Add(3 * time.Minute)},
		{Name: "s", Kind: attendance.SweepKind, Enabled: true, Runs: 2, Skips: 1, LastRunAt: base.Add(2 * time.Minute), NextRunAt: base.Add(3 * time.Minute)},
	}, stats)
}

func TestSchedulerOneOffAndExpiry(t *testing.T) {
	t.Parallel()

	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "once", Every: time.Minute, OneOff: true, Overlap: OverlapAllow})
	f.create(t, Schedule{Name: "expiring", Every: time.Minute, ExpiresAt: base.Add(2 * time.Minute), Overlap: OverlapAllow})
	f.create(t, Schedule{Name: "cron-expiring", Cron: "*/5 * * * *", TimeZone: "UTC", ExpiresAt: base.Add(7 * time.Minute), Overlap: OverlapAllow})

	for i := range 10 {
		f.pass(t, base.Add(time.Duration(i)*time.Minute))
	}
	require.Equal(t, slotStrings(base, time.Minute, 0, 0), f.jobSlots(t, "once"))
	once := f.get(t, "once")
	require.False(t, once.Enabled)
	require.True(t, once.NextRunAt.IsZero())

	require.Equal(t, slotStrings(base, time.Minute, 0, 2), f.jobSlots(t, "expiring"), "expires_at is the last slot")
	expiring := f.get(t, "expiring")
	require.False(t, expiring.Enabled)
	require.True(t, expiring.NextRunAt.IsZero())
	require.Equal(t, slotStrings(base, 5*time.Minute, 0, 1), f.jobSlots(t, "cron-expiring"))
	require.False(t, f.get(t, "cron-expiring").Enabled)

	// A scheduler that comes back after the expiry runs the slots before
	// it (policy once: the latest) and disables the schedule.
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "late", Every: time.Minute, ExpiresAt: base.Add(3 * time.Minute), Overlap: OverlapAllow})
	res := f.pass(t, base.Add(time.Hour))
	require.Equal(t, 1, res.Enqueued)
	require.Equal(t, slotStrings(base, time.Minute, 3, 3), f.jobSlots(t, "late"))
	late := f.get(t, "late")
	require.Equal(t, int64(3), late.MissedCount)
	require.False(t, late.Enabled)

	// Enabling a one-off again runs it once more.
	f.setNow(base.Add(20 * time.Minute))
	again, err := f.store.Enable(context.Background(), f.db.Pool, "once")
	require.NoError(t, err)
	require.Equal(t, base.Add(20*time.Minute), again.NextRunAt)
	f.pass(t, base.Add(20*time.Minute))
	f.pass(t, base.Add(21*time.Minute))
	require.Len(t, f.jobSlots(t, "once"), 2)
}

// TestSchedulerSlotTable: the scheduler does not enqueue a slot that a
// backfill or a run-now already enqueued, and slot rows past their
// retention are pruned.
func TestSchedulerSlotTable(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{SlotRetention: 24 * time.Hour})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "m", Every: time.Minute, Missed: MissedAll, Overlap: OverlapAllow})

	// Down for five minutes; an operator backfills slots 0 to 2 first.
	f.setNow(base.Add(5 * time.Minute))
	res, err := f.store.Backfill(ctx, f.db.Pool, "m", base, base.Add(2*time.Minute))
	require.NoError(t, err)
	require.Len(t, res.Enqueued, 3)
	pass := f.pass(t, base.Add(5*time.Minute))
	require.Equal(t, 3, pass.Enqueued, "slots 3 to 5; 0 to 2 are taken")
	require.Equal(t, append(slotStrings(base, time.Minute, 0, 2), slotStrings(base, time.Minute, 3, 5)...), f.jobSlots(t, "m"))

	// A day and more later, the rows are pruned.
	_, err = f.store.Update(ctx, f.db.Pool, "m", Update{Missed: ptrTo(MissedOnce)})
	require.NoError(t, err)
	f.pass(t, base.Add(26*time.Hour))
	slots, err := f.store.Slots(ctx, f.db.Pool, "m", 0)
	require.NoError(t, err)
	require.Len(t, slots, 1, "only the slot enqueued by the last pass is kept")
	require.Equal(t, base.Add(26*time.Hour), slots[0].Slot)
}

// TestSchedulerFailureBackoff: a schedule whose job cannot be inserted
// does not hold up the others and is retried after a backoff.
func TestSchedulerFailureBackoff(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "a-broken", Every: time.Minute, Overlap: OverlapAllow})
	f.create(t, Schedule{Name: "b-fine", Every: time.Minute, Overlap: OverlapAllow})
	// Written by hand past the store's checks: River refuses priority 9
	// (the table's own check is dropped for the test).
	_, err := f.db.Pool.Exec(ctx, `ALTER TABLE wasso_schedule DROP CONSTRAINT wasso_schedule_priority_check;
		UPDATE wasso_schedule SET priority = 9 WHERE name = 'a-broken'`)
	require.NoError(t, err)

	res := f.pass(t, base)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 1, res.Enqueued)
	res = f.pass(t, base.Add(time.Second))
	require.Zero(t, res.Failed, "backed off")
	_, err = f.db.Pool.Exec(ctx, `UPDATE wasso_schedule SET priority = 1 WHERE name = 'a-broken'`)
	require.NoError(t, err)
	res = f.pass(t, base.Add(scheduleErrorBackoff))
	require.Equal(t, 1, res.Enqueued)
	require.Equal(t, []string{FormatSlot(base)}, f.jobSlots(t, "a-broken"), "policy once: the late slot runs")
}

// TestSchedulerNotify runs the scheduler as the hook of a real client
// whose poll is an hour long, so only a NOTIFY (and the timer it sets) can
// start a schedule enabled while the loop sleeps; then kills the
// listener's connection and checks that the loop polls every second until
// it listens again.
func TestSchedulerNotify(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := newSchedulerFixture(t, StoreConfig{PollInterval: time.Hour, Now: time.Now, Logger: slog.New(slog.DiscardHandler)})
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[attendance.SweepArgs]) error { return nil }))
	client, err := river.NewClient(riverpgxv5.New(f.db.Pool), &river.Config{
		Schema:  f.db.Schema,
		Hooks:   []rivertype.Hook{f.sched},
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		Workers: workers,
	})
	require.NoError(t, err)
	f.store.SetInserter(client)
	require.NoError(t, client.Start(ctx))
	stopped := false
	defer func() {
		if !stopped {
			_ = client.Stop(ctx)
			_ = f.sched.Wait(ctx)
		}
	}()

	// The client is leader and the loop runs once a one-second schedule
	// has a job; the loop then sleeps an hour once it is disabled.
	f.create(t, Schedule{Name: "warm-up", Every: time.Second, Overlap: OverlapAllow})
	wassotest.WaitFor(t, 30*time.Second, "a job of warm-up", func() bool { return len(f.jobSlots(t, "warm-up")) > 0 })
	_, err = f.store.Disable(ctx, f.db.Pool, "warm-up")
	require.NoError(t, err)
	wassotest.WaitFor(t, 10*time.Second, "the scheduler to listen", func() bool { return f.sched.listenerPID.Load() != 0 })

	measure := func(name string) {
		t.Helper()
		// Nothing is due within the hour: the loop sleeps until a
		// notification wakes it.
		wassotest.WaitFor(t, 10*time.Second, "the loop to sleep an hour", func() bool { return time.Duration(f.sched.sleeping.Load()) == time.Hour })
		created, err := f.store.Create(ctx, f.db.Pool, Schedule{Name: name, Kind: attendance.SweepKind, Every: EveryMax,
			StartAt: time.Now().Add(time.Hour), Overlap: OverlapAllow})
		require.NoError(t, err)
		require.False(t, created.Enabled)
		// Enabled now, with its first slot 300 ms away.
		start := time.Now().Add(300 * time.Millisecond)
		_, err = f.store.Update(ctx, f.db.Pool, name, Update{Enabled: ptrTo(true), StartAt: &start})
		require.NoError(t, err)
		enabled := time.Now()
		wassotest.WaitFor(t, 10*time.Second, "a job of "+name, func() bool { return len(f.jobSlots(t, name)) > 0 })
		var createdAt time.Time
		require.NoError(t, f.db.Pool.QueryRow(ctx, `SELECT created_at FROM river_job WHERE metadata->>'schedule' = $1`, name).Scan(&createdAt))
		t.Logf("%s: enable to job seen %s; slot to job inserted %s", name, time.Since(enabled).Round(time.Millisecond), createdAt.Sub(truncMicro(start)).Round(time.Millisecond))
		require.False(t, createdAt.Before(truncMicro(start)), "not before its slot")
	}
	measure("notified")

	// Kill the listener's connection: the loop polls every second instead
	// of every hour until it listens again.
	pid := f.sched.listenerPID.Load()
	_, err = wassotest.AdminPool(t).Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
	require.NoError(t, err)
	wassotest.WaitFor(t, 5*time.Second, "the loop to poll every second", func() bool { return time.Duration(f.sched.sleeping.Load()) == scheduleListenerLostPoll })
	wassotest.WaitFor(t, 10*time.Second, "the scheduler to listen again", func() bool { p := f.sched.listenerPID.Load(); return p != 0 && p != pid })
	measure("notified-again")

	require.NoError(t, client.Stop(ctx))
	require.NoError(t, f.sched.Wait(ctx))
	stopped = true
	done := make(chan struct{})
	go func() { _ = f.sched.Wait(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduler loop did not stop with the client")
	}
}

// TestScheduleNotifyOnOperatorChanges: the trigger on wasso_schedule
// wakes the loop for a schedule created or changed, and not for the
// loop's own advance of a schedule it enqueued. Notifications of a
// session arrive in commit order, so a marker sent after the pass is the
// first to arrive when the pass sent none. Tests of other schemas share
// the channel; their notifications are passed over.
func TestScheduleNotifyOnOperatorChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSchedulerFixture(t, StoreConfig{})
	conn, err := f.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+NotifyChannel)
	require.NoError(t, err)
	next := func() string {
		t.Helper()
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			n, err := conn.Conn().WaitForNotification(waitCtx)
			require.NoError(t, err)
			if strings.HasPrefix(n.Payload, f.db.Schema+".") {
				return n.Payload
			}
		}
	}
	own := f.db.Schema + ".n"

	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "n", Every: time.Minute, StartAt: base})
	require.Equal(t, own, next(), "a created schedule wakes the loop")

	require.Equal(t, 1, f.pass(t, base).Enqueued)
	_, err = f.db.Pool.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, f.db.Schema+".marker")
	require.NoError(t, err)
	require.Equal(t, f.db.Schema+".marker", next(), "the pass's own advance wakes no one")

	later := 2 * time.Minute
	_, err = f.store.Update(ctx, f.db.Pool, "n", Update{Every: &later})
	require.NoError(t, err)
	require.Equal(t, own, next(), "an edit wakes the loop")
	_, err = f.store.Disable(ctx, f.db.Pool, "n")
	require.NoError(t, err)
	require.Equal(t, own, next(), "disabling wakes the loop")
	require.NoError(t, f.store.Delete(ctx, f.db.Pool, "n"))
	require.Equal(t, own, next(), "a deletion wakes the loop")
}
