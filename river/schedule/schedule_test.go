package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// testClock is a clock tests set by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newScheduleStore returns a store on a fresh schema, inserting with an
// insert-only River client, at clock's time.
func newScheduleStore(t *testing.T, clock *testClock) (*wassotest.DB, *schedule.Store) {
	t.Helper()
	db := wassotest.NewDB(t, wassotest.Options{})
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	require.NoError(t, err)
	store, err := schedule.NewStore(schedule.StoreConfig{
		Kinds:           wassoriver.ScheduleKinds(),
		DefaultTimeZone: "Asia/Seoul",
		Inserter:        client,
		Now:             clock.Now,
	})
	require.NoError(t, err)
	return db, store
}

// scheduledJobs returns the slots (metadata) of the jobs of a schedule,
// oldest first.
func scheduledJobs(t *testing.T, db *wassotest.DB, name string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(),
		`SELECT metadata->>'slot' FROM river_job WHERE metadata->>'schedule' = $1 ORDER BY id`, name)
	require.NoError(t, err)
	slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return slots
}

func TestScheduleValidation(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	db, store := newScheduleStore(t, &testClock{now: now})

	valid := func() schedule.Schedule {
		return schedule.Schedule{Name: "sweep", Kind: attendance.SweepKind, Every: time.Minute, Enabled: true}
	}
	for _, tc := range []struct {
		field  string
		change func(*schedule.Schedule)
	}{
		{"name", func(s *schedule.Schedule) { s.Name = "" }},
		{"name", func(s *schedule.Schedule) { s.Name = "no spaces" }},
		{"name", func(s *schedule.Schedule) { s.Name = "é" }},
		{"name", func(s *schedule.Schedule) { s.Name = strings.Repeat("a", 101) }},
		{"kind", func(s *schedule.Schedule) { s.Kind = "" }},
		{"kind", func(s *schedule.Schedule) { s.Kind = "billing.charge" }},
		{"args", func(s *schedule.Schedule) { s.Args = json.RawMessage(`[]`) }},
		{"args", func(s *schedule.Schedule) { s.Args = json.RawMessage(`{"lookback":`) }},
		{"args", func(s *schedule.Schedule) { s.Args = json.RawMessage(`{"lookback": "1h"}`) }},
		{"args", func(s *schedule.Schedule) { s.Args = json.RawMessage(`{"look_back": 1}`) }},
		{"args", func(s *schedule.Schedule) {
			s.Kind, s.Args = attendance.SettleEventKind, json.RawMessage(`{"event_id": "one"}`)
		}},
		{"every", func(s *schedule.Schedule) { s.Every = 999 * time.Millisecond }},
		{"every", func(s *schedule.Schedule) { s.Every = 31*24*time.Hour + time.Second }},
		{"every", func(s *schedule.Schedule) { s.Every = time.Second + time.Nanosecond }},
		{"every", func(s *schedule.Schedule) { s.Cron = "0 9 * * *" }},
		{"every", func(s *schedule.Schedule) { s.Every = 0 }},
		{"cron", func(s *schedule.Schedule) { s.Every, s.Cron = 0, "* * * *" }},
		{"cron", func(s *schedule.Schedule) { s.Every, s.Cron = 0, "0 0 9 * * *" }},
		{"cron", func(s *schedule.Schedule) { s.Every, s.Cron = 0, "61 * * * *" }},
		{"cron", func(s *schedule.Schedule) { s.Every, s.Cron = 0, "@every 1h" }},
		{"cron", func(s *schedule.Schedule) { s.Every, s.Cron = 0, "TZ=UTC 0 9 * * *" }},
		{"cron", func(s *schedule.Schedule) { s.Every, s.Cron = 0, "@fortnightly" }},
		{"cron", func(s *schedule.Schedule) { s.Every, s.Cron = 0, "0 0 30 2 *" }}, // never fires
		{"time_zone", func(s *schedule.Schedule) { s.TimeZone = "Mars/Olympus_Mons" }},
		{"time_zone", func(s *schedule.Schedule) { s.TimeZone = "Local" }},
		{"queue", func(s *schedule.Schedule) { s.Queue = "Not A Queue" }},
		{"priority", func(s *schedule.Schedule) { s.Priority = 5 }},
		{"priority", func(s *schedule.Schedule) { s.Priority = -1 }},
		{"max_attempts", func(s *schedule.Schedule) { s.MaxAttempts = -1 }},
		{"missed", func(s *schedule.Schedule) { s.Missed = "sometimes" }},
		{"overlap", func(s *schedule.Schedule) { s.Overlap = "never" }},
		{"expires_at", func(s *schedule.Schedule) { s.StartAt, s.ExpiresAt = now.Add(time.Hour), now.Add(time.Minute) }},
		{"expires_at", func(s *schedule.Schedule) { s.ExpiresAt = now.Add(-time.Minute) }}, // nothing left to run
	} {
		s := valid()
		tc.change(&s)
		_, err := store.Create(ctx, db.Pool, s)
		require.ErrorIs(t, err, schedule.ErrInvalidSchedule, "%s: %+v", tc.field, s)
		var fieldErr *schedule.FieldError
		require.ErrorAs(t, err, &fieldErr)
		require.Equal(t, tc.field, fieldErr.Field, "%v", err)
		if s.Kind == "billing.charge" {
			require.ErrorIs(t, err, schedule.ErrUnknownKind)
		}
	}
	list, err := store.List(ctx, db.Pool)
	require.NoError(t, err)
	require.Empty(t, list, "nothing written")

	created, err := store.Create(ctx, db.Pool, valid())
	require.NoError(t, err)
	_, err = store.Create(ctx, db.Pool, valid())
	require.ErrorIs(t, err, schedule.ErrExists)

	// A schedule created disabled may well have expired already.
	expired := valid()
	expired.Name, expired.Enabled, expired.ExpiresAt = "expired", false, now.Add(-time.Minute)
	_, err = store.Create(ctx, db.Pool, expired)
	require.NoError(t, err)
	_, err = store.Enable(ctx, db.Pool, "expired")
	var fieldErr *schedule.FieldError
	require.ErrorAs(t, err, &fieldErr)
	require.Equal(t, "expires_at", fieldErr.Field)

	// Updates are validated the same way and leave the row as it was.
	bad := 7
	_, err = store.Update(ctx, db.Pool, "sweep", schedule.Update{Priority: &bad})
	require.ErrorAs(t, err, &fieldErr)
	require.Equal(t, "priority", fieldErr.Field)
	got, err := store.Get(ctx, db.Pool, "sweep")
	require.NoError(t, err)
	require.Equal(t, created, got)

	for _, err := range []error{
		func() error { _, err := store.Get(ctx, db.Pool, "nope"); return err }(),
		func() error { _, err := store.Update(ctx, db.Pool, "nope", schedule.Update{}); return err }(),
		func() error { _, err := store.Enable(ctx, db.Pool, "nope"); return err }(),
		func() error { _, err := store.RunNow(ctx, db.Pool, "nope"); return err }(),
		store.Delete(ctx, db.Pool, "nope"),
	} {
		require.ErrorIs(t, err, schedule.ErrNotFound)
	}
}

func TestScheduleDefaultsAndArgs(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)
	db, store := newScheduleStore(t, &testClock{now: now})

	sweep, err := store.Create(ctx, db.Pool, schedule.Schedule{Name: "sweep", Kind: attendance.SweepKind, Every: 5 * time.Minute, Enabled: true})
	require.NoError(t, err)
	require.Equal(t, json.RawMessage(`{}`), sweep.Args)
	require.Equal(t, "Asia/Seoul", sweep.TimeZone)
	require.Equal(t, river.QueueDefault, sweep.Queue)
	require.Equal(t, 1, sweep.Priority)
	require.Equal(t, river.MaxAttemptsDefault, sweep.MaxAttempts)
	require.Equal(t, schedule.MissedOnce, sweep.Missed)
	require.Equal(t, schedule.OverlapSkip, sweep.Overlap)
	require.Equal(t, time.Date(2025, 3, 1, 12, 5, 0, 0, time.UTC), sweep.NextRunAt, "multiples of 5 minutes since the epoch")
	require.Equal(t, now, sweep.CreatedAt)

	// The kind's InsertOpts give the defaults; its args decode strictly.
	settle, err := store.Create(ctx, db.Pool, schedule.Schedule{
		Name: "settle-7", Kind: attendance.SettleEventKind, Cron: "@daily", Enabled: true,
		Args: json.RawMessage(`{"event_id": 7, "deadline": "2025-03-02T00:00:00Z"}`),
	})
	require.NoError(t, err)
	require.Equal(t, attendance.QueueExact, settle.Queue)
	require.Equal(t, time.Date(2025, 3, 1, 15, 0, 0, 0, time.UTC), settle.NextRunAt, "midnight in Seoul")

	notify, err := store.Create(ctx, db.Pool, schedule.Schedule{
		Name: "notify", Kind: attendance.NotifyAbsentKind, Every: time.Hour, StartAt: now.Add(10 * time.Minute),
		Args: json.RawMessage(`{"event_id": 7, "mapping_ids": [1, 2]}`), Enabled: true,
	})
	require.NoError(t, err)
	require.Equal(t, attendance.NotifyMaxAttemptsDefault, notify.MaxAttempts)
	require.Equal(t, now.Add(10*time.Minute), notify.NextRunAt, "slots start at start_at")

	// JSON: every as a duration string, omitted for cron schedules.
	b, err := json.Marshal(sweep)
	require.NoError(t, err)
	require.Contains(t, string(b), `"every":"5m0s"`)
	var back schedule.Schedule
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, *sweep, back)
	b, err = json.Marshal(settle)
	require.NoError(t, err)
	require.NotContains(t, string(b), `"every"`)
	require.Contains(t, string(b), `"cron":"@daily"`)

	var update schedule.Update
	require.NoError(t, json.Unmarshal([]byte(`{"every": "10m", "description": "ten"}`), &update))
	updated, err := store.Update(ctx, db.Pool, "settle-7", update)
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, updated.Every)
	require.Empty(t, updated.Cron, "setting every clears cron")
	require.Equal(t, "ten", updated.Description)
	require.Equal(t, time.Date(2025, 3, 1, 12, 10, 0, 0, time.UTC), updated.NextRunAt, "recomputed from now")
	b, err = json.Marshal(update)
	require.NoError(t, err)
	require.JSONEq(t, `{"every": "10m0s", "description": "ten"}`, string(b))

	hourly := "0 * * * *"
	updated, err = store.Update(ctx, db.Pool, "settle-7", schedule.Update{Cron: &hourly})
	require.NoError(t, err)
	require.Zero(t, updated.Every, "setting cron clears every")
	require.Equal(t, time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC), updated.NextRunAt)
}

// TestScheduleCRUDTxRolledBack: the store's methods given the caller's
// transaction work inside it and commit nothing of their own.
func TestScheduleCRUDTxRolledBack(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	db, store := newScheduleStore(t, &testClock{now: now})

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = store.Create(ctx, tx, schedule.Schedule{Name: "a", Kind: attendance.SweepKind, Every: time.Minute, Enabled: true})
	require.NoError(t, err)
	_, err = store.Create(ctx, tx, schedule.Schedule{Name: "b", Kind: attendance.SweepKind, Cron: "*/5 * * * *"})
	require.NoError(t, err)
	desc := "changed"
	u, err := store.Update(ctx, tx, "a", schedule.Update{Description: &desc})
	require.NoError(t, err)
	require.Equal(t, "changed", u.Description)
	d, err := store.Disable(ctx, tx, "a")
	require.NoError(t, err)
	require.False(t, d.Enabled)
	require.True(t, d.NextRunAt.IsZero())
	e, err := store.Enable(ctx, tx, "b")
	require.NoError(t, err)
	require.Equal(t, now, e.NextRunAt, "12:00 is a slot of */5")
	run, err := store.RunNow(ctx, tx, "b")
	require.NoError(t, err)
	require.NotZero(t, run.JobID)
	filled, err := store.Backfill(ctx, tx, "b", now.Add(-time.Hour), now)
	require.NoError(t, err)
	require.Len(t, filled.Enqueued, 12)
	require.Equal(t, 1, filled.Skipped)
	require.NoError(t, store.Delete(ctx, tx, "a"))
	list, err := store.List(ctx, tx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, int64(13), list[0].TotalRunCount, "one run now and 12 backfilled: 12:00 was the run now's")
	require.NoError(t, tx.Rollback(ctx))

	list, err = store.List(ctx, db.Pool)
	require.NoError(t, err)
	require.Empty(t, list)
	var jobs, slots int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM river_job), (SELECT count(*) FROM wasso_schedule_slot)`).Scan(&jobs, &slots))
	require.Zero(t, jobs)
	require.Zero(t, slots)
}

func TestScheduleRunNow(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	clock := &testClock{now: now}
	db, store := newScheduleStore(t, clock)

	created, err := store.Create(ctx, db.Pool, schedule.Schedule{
		Name: "sweep", Kind: attendance.SweepKind, Cron: "0 3 * * *", Enabled: true,
		Queue: "maintenance", Priority: 2, MaxAttempts: 3, Args: json.RawMessage(`{"lookback": 3600000000000}`),
	})
	require.NoError(t, err)
	run, err := store.RunNow(ctx, db.Pool, "sweep")
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC), run.Slot, "now to the microsecond")
	// Same instant again: the next microsecond, still one job each.
	run2, err := store.RunNow(ctx, db.Pool, "sweep")
	require.NoError(t, err)
	require.Equal(t, run.Slot.Add(time.Microsecond), run2.Slot)

	var kind, queue string
	var priority, maxAttempts int
	var args, metadata map[string]any
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT kind, queue, priority, max_attempts, args, metadata FROM river_job WHERE id = $1`, run.JobID).
		Scan(&kind, &queue, &priority, &maxAttempts, &args, &metadata))
	require.Equal(t, attendance.SweepKind, kind)
	require.Equal(t, "maintenance", queue)
	require.Equal(t, 2, priority)
	require.Equal(t, 3, maxAttempts)
	require.Equal(t, map[string]any{"lookback": float64(3600000000000)}, args)
	require.Equal(t, "sweep", metadata["schedule"])
	require.Equal(t, "2025-03-01T12:00:00.123456Z", metadata["slot"])

	got, err := store.Get(ctx, db.Pool, "sweep")
	require.NoError(t, err)
	require.Equal(t, created.NextRunAt, got.NextRunAt, "run now does not move the next run")
	require.Equal(t, int64(2), got.TotalRunCount)
	require.Equal(t, run2.JobID, got.LastJobID)
	require.Equal(t, run2.Slot, got.LastRunAt)

	// A disabled schedule runs now too.
	_, err = store.Disable(ctx, db.Pool, "sweep")
	require.NoError(t, err)
	_, err = store.RunNow(ctx, db.Pool, "sweep")
	require.NoError(t, err)
	require.Len(t, scheduledJobs(t, db, "sweep"), 3)
	slots, err := store.Slots(ctx, db.Pool, "sweep", 0)
	require.NoError(t, err)
	require.Len(t, slots, 3)
	require.Equal(t, "run_now", slots[0].Source)
}

func TestScheduleBackfill(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := &testClock{now: base.Add(time.Hour)}
	db, store := newScheduleStore(t, clock)

	_, err := store.Create(ctx, db.Pool, schedule.Schedule{Name: "m", Kind: attendance.SweepKind, Every: time.Minute, Enabled: true})
	require.NoError(t, err)

	res, err := store.Backfill(ctx, db.Pool, "m", base, base.Add(10*time.Minute))
	require.NoError(t, err)
	require.Len(t, res.Enqueued, 11, "both ends included")
	require.Zero(t, res.Skipped)
	res, err = store.Backfill(ctx, db.Pool, "m", base.Add(5*time.Minute+time.Second), base.Add(15*time.Minute))
	require.NoError(t, err)
	require.Len(t, res.Enqueued, 5, "11 to 15")
	require.Equal(t, 5, res.Skipped, "6 to 10 were enqueued by the first backfill")
	require.Equal(t, base.Add(11*time.Minute), res.Enqueued[0].Slot)

	slots := scheduledJobs(t, db, "m")
	require.Len(t, slots, 16)
	seen := map[string]bool{}
	for _, s := range slots {
		require.False(t, seen[s], "slot %s enqueued twice", s)
		seen[s] = true
	}
	require.True(t, seen["2025-03-01T00:00:00Z"])
	require.True(t, seen["2025-03-01T00:15:00Z"])
	got, err := store.Get(ctx, db.Pool, "m")
	require.NoError(t, err)
	require.Equal(t, int64(16), got.TotalRunCount)
	require.Equal(t, base.Add(15*time.Minute), got.LastRunAt)

	var fieldErr *schedule.FieldError
	_, err = store.Backfill(ctx, db.Pool, "m", base, base.Add(2*time.Hour))
	require.ErrorAs(t, err, &fieldErr)
	require.Equal(t, "to", fieldErr.Field, "in the future")
	_, err = store.Backfill(ctx, db.Pool, "m", base.Add(time.Minute), base)
	require.ErrorAs(t, err, &fieldErr)
	require.Equal(t, "to", fieldErr.Field, "before from")
	small, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds(), Inserter: riverInserter(t, db), Now: clock.Now, MaxBackfill: 10})
	require.NoError(t, err)
	_, err = small.Backfill(ctx, db.Pool, "m", base, base.Add(20*time.Minute))
	require.ErrorAs(t, err, &fieldErr)
	require.Equal(t, "to", fieldErr.Field, "more than MaxBackfill")
	require.Len(t, scheduledJobs(t, db, "m"), 16, "refused backfills enqueue nothing")
}

func riverInserter(t *testing.T, db *wassotest.DB) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	require.NoError(t, err)
	return client
}

// slotsBetween enumerates a schedule's slots in [from, to) with NextSlot.
func slotsBetween(t *testing.T, s schedule.Schedule, from, to time.Time) []string {
	t.Helper()
	var out []string
	next, err := s.NextSlot(from.Add(-time.Nanosecond))
	require.NoError(t, err)
	for ; next.Before(to); next, err = s.NextSlot(next) {
		require.NoError(t, err)
		out = append(out, schedule.FormatSlot(next))
	}
	return out
}

// TestScheduleDST enumerates the slots of cron schedules across daylight
// saving time transitions: a local time that does not exist fires once at
// the end of the gap, one that occurs twice fires once at its first
// occurrence, and expressions matching every hour follow elapsed time.
func TestScheduleDST(t *testing.T) {
	t.Parallel()

	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, ny) }

	for _, tc := range []struct {
		name     string
		cron, tz string
		from, to time.Time
		want     []string
	}{
		{
			name: "SeoulNineIsMidnightUTC", cron: "0 9 * * *", tz: "Asia/Seoul",
			from: time.Date(2025, 3, 8, 0, 0, 0, 0, time.UTC), to: time.Date(2025, 3, 11, 0, 0, 0, 0, time.UTC),
			want: []string{"2025-03-08T00:00:00Z", "2025-03-09T00:00:00Z", "2025-03-10T00:00:00Z"},
		},
		{
			// 2025-03-09: 02:00 EST becomes 03:00 EDT; 02:30 does not
			// exist and fires at 03:00 EDT (07:00Z).
			name: "NewYorkSpringForward0230", cron: "30 2 * * *", tz: "America/New_York",
			from: day(2025, 3, 8), to: day(2025, 3, 11),
			want: []string{"2025-03-08T07:30:00Z", "2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"},
		},
		{
			// Several nonexistent times fire once, at the end of the gap.
			name: "NewYorkSpringForwardQuarterHours", cron: "*/15 2 * * *", tz: "America/New_York",
			from: day(2025, 3, 9), to: day(2025, 3, 10),
			want: []string{"2025-03-09T07:00:00Z"},
		},
		{
			// 2025-11-02: 02:00 EDT becomes 01:00 EST; 02:30 occurs once,
			// in EST.
			name: "NewYorkFallBack0230", cron: "30 2 * * *", tz: "America/New_York",
			from: day(2025, 11, 1), to: day(2025, 11, 4),
			want: []string{"2025-11-01T06:30:00Z", "2025-11-02T07:30:00Z", "2025-11-03T07:30:00Z"},
		},
		{
			// 01:30 occurs twice (EDT, then EST): once, at the first.
			name: "NewYorkFallBack0130", cron: "30 1 * * *", tz: "America/New_York",
			from: day(2025, 11, 1), to: day(2025, 11, 4),
			want: []string{"2025-11-01T05:30:00Z", "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"},
		},
	} {
		s := schedule.Schedule{Cron: tc.cron, TimeZone: tc.tz}
		require.Equal(t, tc.want, slotsBetween(t, s, tc.from, tc.to), tc.name)
	}

	// Hourly expressions follow elapsed time: 23 slots on the spring-
	// forward day, 25 on the fall-back day (01:00 EDT and 01:00 EST).
	hourly := schedule.Schedule{Cron: "0 * * * *", TimeZone: "America/New_York"}
	require.Len(t, slotsBetween(t, hourly, day(2025, 3, 9), day(2025, 3, 10)), 23)
	fall := slotsBetween(t, hourly, day(2025, 11, 2), day(2025, 11, 3))
	require.Len(t, fall, 25)
	require.Equal(t, []string{"2025-11-02T04:00:00Z", "2025-11-02T05:00:00Z", "2025-11-02T06:00:00Z", "2025-11-02T07:00:00Z"}, fall[:4])

	// Why the wrapper: robfig/cron alone skips the spring-forward day and
	// fires twice in the repeated hour.
	spec, err := cron.ParseStandard("CRON_TZ=America/New_York 30 2 * * *")
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 3, 10, 6, 30, 0, 0, time.UTC), spec.Next(time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC)).UTC())
	spec, err = cron.ParseStandard("CRON_TZ=America/New_York 30 1 * * *")
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 11, 2, 6, 30, 0, 0, time.UTC), spec.Next(time.Date(2025, 11, 2, 5, 30, 0, 0, time.UTC)).UTC())

	// Interval schedules ignore time zones: multiples since the epoch, or
	// from start_at.
	every := schedule.Schedule{Every: 90 * time.Minute, TimeZone: "America/New_York"}
	require.Equal(t, []string{"2025-03-09T06:00:00Z", "2025-03-09T07:30:00Z"},
		slotsBetween(t, every, time.Date(2025, 3, 9, 6, 0, 0, 0, time.UTC), time.Date(2025, 3, 9, 8, 0, 0, 0, time.UTC)))
	every.StartAt = time.Date(2025, 3, 9, 6, 10, 0, 0, time.UTC)
	require.Equal(t, []string{"2025-03-09T06:10:00Z", "2025-03-09T07:40:00Z"},
		slotsBetween(t, every, time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 9, 8, 0, 0, 0, time.UTC)))
}

func TestScheduleStoreConfig(t *testing.T) {
	t.Parallel()

	for _, c := range []schedule.StoreConfig{
		{DefaultTimeZone: "Nowhere/Else"},
		{MaxCatchUp: -1},
		{PollInterval: time.Millisecond},
		{Kinds: []schedule.Kind{{}}},
		{Kinds: append(wassoriver.ScheduleKinds(), schedule.NewKind(attendance.SweepArgs{}))},
	} {
		_, err := schedule.NewStore(c)
		require.ErrorIs(t, err, schedule.ErrInvalidConfig, "%+v", c)
	}
	for _, batch := range []int{-1, schedule.PassBatchMax + 1} {
		_, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds(), PassBatch: batch})
		require.ErrorIs(t, err, schedule.ErrInvalidConfig)
		require.ErrorContains(t, err, "PassBatch")
	}
	require.Equal(t, schedule.PassBatchDefault, schedule.StoreConfig{}.WithDefaults().PassBatch)
	store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds()})
	require.NoError(t, err)
	require.Equal(t, []string{attendance.NotifyAbsentKind, attendance.SettleEventKind, attendance.SweepKind}, store.Kinds())
	_, err = store.RunNow(context.Background(), wassotest.AdminPool(t), "x")
	require.True(t, errors.Is(err, schedule.ErrInvalidConfig), "no inserter: %v", err)
}
