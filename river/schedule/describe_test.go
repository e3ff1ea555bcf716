package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/river/schedule"
)

// TestSchedulePauseNote: Pause records who, why and when (the store's
// clock); pausing again replaces the note, a plain disable of a paused
// schedule keeps it, other changes keep it, enabling clears it. A bad
// note is refused with nothing written.
func TestSchedulePauseNote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &testClock{now: base}
	db, store := newScheduleStore(t, clock)
	_, err := store.Create(ctx, db.Pool, schedule.Schedule{Name: "nightly", Kind: attendance.SweepKind, Cron: "0 3 * * *", Enabled: true})
	require.NoError(t, err)
	get := func() *schedule.Schedule {
		s, err := store.Get(ctx, db.Pool, "nightly")
		require.NoError(t, err)
		return s
	}
	require.Nil(t, get().Paused, "an enabled schedule has no note")

	clock.Set(base.Add(time.Minute))
	paused, err := store.Pause(ctx, db.Pool, "nightly", schedule.PauseNote{By: "alice", Note: "club on holiday until April", At: base.Add(-time.Hour)})
	require.NoError(t, err)
	want := &schedule.PauseNote{By: "alice", Note: "club on holiday until April", At: base.Add(time.Minute)}
	require.Equal(t, want, paused.Paused, "At is the store's clock, not the caller's")
	require.False(t, paused.Enabled)
	require.True(t, paused.NextRunAt.IsZero())
	require.Equal(t, paused, get())

	// Other changes and a plain disable keep the note.
	desc := "nightly sweep"
	_, err = store.Update(ctx, db.Pool, "nightly", schedule.Update{Description: &desc})
	require.NoError(t, err)
	_, err = store.Disable(ctx, db.Pool, "nightly")
	require.NoError(t, err)
	require.Equal(t, want, get().Paused)

	// Pausing again replaces it.
	clock.Set(base.Add(2 * time.Minute))
	_, err = store.Pause(ctx, db.Pool, "nightly", schedule.PauseNote{By: "bob", Note: "still closed"})
	require.NoError(t, err)
	require.Equal(t, &schedule.PauseNote{By: "bob", Note: "still closed", At: base.Add(2 * time.Minute)}, get().Paused)

	// Enabling clears it.
	enabled, err := store.Enable(ctx, db.Pool, "nightly")
	require.NoError(t, err)
	require.Nil(t, enabled.Paused)
	require.Nil(t, get().Paused)

	// A plain disable of an enabled schedule records when, by nobody.
	clock.Set(base.Add(3 * time.Minute))
	_, err = store.Disable(ctx, db.Pool, "nightly")
	require.NoError(t, err)
	require.Equal(t, &schedule.PauseNote{At: base.Add(3 * time.Minute)}, get().Paused)
	_, err = store.Enable(ctx, db.Pool, "nightly")
	require.NoError(t, err)

	// Bad notes: a *FieldError naming the field, nothing written.
	for _, tc := range []struct {
		note  schedule.PauseNote
		field string
		msg   string
	}{
		{schedule.PauseNote{Note: strings.Repeat("é", schedule.PauseNoteMaxLen+1)}, "paused.note", "is 501 characters long, more than 500"},
		{schedule.PauseNote{Note: "two\nlines"}, "paused.note", "control character (U+000A)"},
		{schedule.PauseNote{By: strings.Repeat("x", schedule.PauseByMaxLen+1)}, "paused.by", "more than 100"},
		{schedule.PauseNote{By: "bad\xffutf8"}, "paused.by", "not valid UTF-8"},
	} {
		_, err := store.Pause(ctx, db.Pool, "nightly", tc.note)
		var fieldErr *schedule.FieldError
		require.ErrorAs(t, err, &fieldErr, tc.field)
		require.Equal(t, tc.field, fieldErr.Field)
		require.ErrorIs(t, err, schedule.ErrInvalidSchedule)
		require.ErrorContains(t, err, tc.msg)
		require.True(t, get().Enabled, "nothing written")
		require.Nil(t, get().Paused)
	}
	// A note of exactly the limit is fine.
	_, err = store.Pause(ctx, db.Pool, "nightly", schedule.PauseNote{Note: strings.Repeat("é", schedule.PauseNoteMaxLen)})
	require.NoError(t, err)

	_, err = store.Pause(ctx, db.Pool, "no-such", schedule.PauseNote{By: "alice"})
	require.ErrorIs(t, err, schedule.ErrNotFound)

	// The table refuses what the store refuses, for rows written by hand.
	_, err = db.Pool.Exec(ctx, `UPDATE wasso_schedule SET paused_note = repeat('x', 501) WHERE name = 'nightly'`)
	require.ErrorContains(t, err, "wasso_schedule_paused_note_check")
	_, err = db.Pool.Exec(ctx, `UPDATE wasso_schedule SET paused_at = NULL WHERE name = 'nightly'`)
	require.ErrorContains(t, err, "wasso_schedule_paused_check")
}

// TestScheduleDescribeDST: the next slots of cron schedules across a
// daylight saving time change carry their zone's offset, and the first
// slot after the change is marked.
func TestScheduleDescribeDST(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Berlin springs forward on 2025-03-30 (CET +01:00 to CEST +02:00);
	// New York falls back on 2025-11-02 (EDT -04:00 to EST -05:00).
	clock := &testClock{now: time.Date(2025, 3, 25, 12, 0, 0, 0, time.UTC)}
	db, store := newScheduleStore(t, clock)
	for _, s := range []schedule.Schedule{
		{Name: "berlin", Cron: "0 9 * * *", TimeZone: "Europe/Berlin", Enabled: true},
		{Name: "interval", Every: 6 * time.Hour, TimeZone: "UTC", Enabled: true},
		{Name: "paused-ny", Cron: "30 8 * * 1-5", TimeZone: "America/New_York"},
	} {
		s.Kind = attendance.SweepKind
		_, err := store.Create(ctx, db.Pool, s)
		require.NoError(t, err)
	}

	type slot struct{ local, offset string }
	summary := func(d *schedule.Description) (got []slot, changed []int) {
		for i, s := range d.NextSlots {
			require.Equal(t, s.At, s.Local.UTC(), "At and Local are one instant")
			require.Equal(t, time.UTC, s.At.Location())
			got = append(got, slot{s.Local.Format("2006-01-02 15:04 MST"), s.Offset})
			if s.OffsetChanged {
				changed = append(changed, i)
			}
		}
		return got, changed
	}

	d, err := store.Describe(ctx, db.Pool, "berlin")
	require.NoError(t, err)
	require.Equal(t, clock.Now(), d.AsOf)
	got, changed := summary(d)
	require.Len(t, got, schedule.DescribeSlots)
	require.Equal(t, []slot{
		{"2025-03-26 09:00 CET", "+01:00"}, {"2025-03-27 09:00 CET", "+01:00"}, {"2025-03-28 09:00 CET", "+01:00"},
		{"2025-03-29 09:00 CET", "+01:00"}, {"2025-03-30 09:00 CEST", "+02:00"}, {"2025-03-31 09:00 CEST", "+02:00"},
		{"2025-04-01 09:00 CEST", "+02:00"}, {"2025-04-02 09:00 CEST", "+02:00"}, {"2025-04-03 09:00 CEST", "+02:00"},
		{"2025-04-04 09:00 CEST", "+02:00"},
	}, got, "09:00 local every day: 08:00 UTC, then 07:00 UTC")
	require.Equal(t, []int{4}, changed, "the first slot after the change, only")
	require.Equal(t, time.Date(2025, 3, 30, 7, 0, 0, 0, time.UTC), d.NextSlots[4].At)

	d, err = store.Describe(ctx, db.Pool, "interval")
	require.NoError(t, err)
	got, changed = summary(d)
	require.Len(t, got, schedule.DescribeSlots)
	require.Equal(t, slot{"2025-03-25 12:00 UTC", "+00:00"}, got[0], "the slot due now")
	require.Equal(t, slot{"2025-03-26 18:00 UTC", "+00:00"}, got[5])
	require.Empty(t, changed)

	// A disabled schedule: the slots it would run if enabled now. The
	// New York one, weekdays at 08:30, across the fall-back; the first
	// slot is compared with the offset at the description's time.
	clock.Set(time.Date(2025, 10, 30, 12, 0, 0, 0, time.UTC)) // Thursday, 08:00 EDT
	d, err = store.Describe(ctx, db.Pool, "paused-ny")
	require.NoError(t, err)
	require.False(t, d.Schedule.Enabled)
	got, changed = summary(d)
	require.Equal(t, []slot{
		{"2025-10-30 08:30 EDT", "-04:00"}, {"2025-10-31 08:30 EDT", "-04:00"}, {"2025-11-03 08:30 EST", "-05:00"},
		{"2025-11-04 08:30 EST", "-05:00"}, {"2025-11-05 08:30 EST", "-05:00"},
	}, got[:5])
	require.Equal(t, []int{2}, changed)

	// JSON: the schedule's fields, with the slots, each with its offset.
	raw, err := json.Marshal(d)
	require.NoError(t, err)
	var asSchedule schedule.Schedule
	require.NoError(t, json.Unmarshal(raw, &asSchedule), "a Description reads as a Schedule")
	require.Equal(t, d.Schedule, asSchedule)
	var generic map[string]any
	require.NoError(t, json.Unmarshal(raw, &generic))
	slots := generic["next_slots"].([]any)
	require.Len(t, slots, schedule.DescribeSlots)
	require.Equal(t, map[string]any{
		"at": "2025-11-03T13:30:00Z", "local": "2025-11-03T08:30:00-05:00", "zone": "EST", "offset": "-05:00", "offset_changed": true,
	}, slots[2])
	require.Equal(t, []any{}, generic["runs"])
	require.Equal(t, "2025-10-30T12:00:00Z", generic["as_of"])

	// A one-off shows its one slot, an expiring schedule none after its
	// expiry, an enabled one with no run left none.
	clock.Set(time.Date(2025, 3, 25, 12, 0, 0, 0, time.UTC))
	_, err = store.Create(ctx, db.Pool, schedule.Schedule{Name: "once", Kind: attendance.SweepKind, Every: time.Hour, OneOff: true, Enabled: true})
	require.NoError(t, err)
	d, err = store.Describe(ctx, db.Pool, "once")
	require.NoError(t, err)
	require.Len(t, d.NextSlots, 1)
	_, err = store.Create(ctx, db.Pool, schedule.Schedule{Name: "expiring", Kind: attendance.SweepKind, Every: time.Hour, Enabled: true,
		ExpiresAt: time.Date(2025, 3, 25, 15, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	d, err = store.Describe(ctx, db.Pool, "expiring")
	require.NoError(t, err)
	require.Len(t, d.NextSlots, 4, "12:00 (due now) to 15:00")

	_, err = store.Describe(ctx, db.Pool, "no-such")
	require.ErrorIs(t, err, schedule.ErrNotFound)
	require.ErrorContains(t, err, `schedule "no-such"`)

	// Without a River client the runs cannot be listed: a config error.
	bare, err := schedule.NewStore(schedule.StoreConfig{Kinds: []schedule.Kind{schedule.NewKind(attendance.SweepArgs{})}})
	require.NoError(t, err)
	_, err = bare.Describe(ctx, db.Pool, "berlin")
	require.ErrorIs(t, err, schedule.ErrInvalidConfig)
}

// flakyArgs are the args of a job that fails when told to.
type flakyArgs struct {
	Fail bool `json:"fail"`
}

func (flakyArgs) Kind() string { return "test.flaky" }

type flakyWorker struct {
	river.WorkerDefaults[flakyArgs]
}

func (flakyWorker) Work(_ context.Context, job *river.Job[flakyArgs]) error {
	if job.Args.Fail {
		return errors.New("the club's API answered 503")
	}
	return nil
}

// TestScheduleDescribeRuns: the runs of a schedule are its jobs, found by
// their metadata through River's job list, newest first, with their state,
// attempts, duration and last error; another schedule's jobs are not
// among them.
func TestScheduleDescribeRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	workers := river.NewWorkers()
	river.AddWorker(workers, &flakyWorker{})
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Schema:  db.Schema,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		Workers: workers,
	})
	require.NoError(t, err)
	wassotest.StartClient(t, client)
	store, err := schedule.NewStore(schedule.StoreConfig{
		Kinds:    []schedule.Kind{schedule.NewKind(flakyArgs{})},
		Inserter: client,
	})
	require.NoError(t, err)
	for _, s := range []schedule.Schedule{
		{Name: "flaky", Kind: "test.flaky", Every: time.Hour, Args: json.RawMessage(`{"fail": true}`), MaxAttempts: 1},
		{Name: "flaky-2", Kind: "test.flaky", Every: time.Hour},
	} {
		_, err := store.Create(ctx, db.Pool, s)
		require.NoError(t, err)
	}

	failed, err := store.RunNow(ctx, db.Pool, "flaky")
	require.NoError(t, err)
	args := json.RawMessage(`{"fail": false}`)
	_, err = store.Update(ctx, db.Pool, "flaky", schedule.Update{Args: &args})
	require.NoError(t, err)
	ok, err := store.RunNow(ctx, db.Pool, "flaky")
	require.NoError(t, err)
	other, err := store.RunNow(ctx, db.Pool, "flaky-2")
	require.NoError(t, err)

	var d *schedule.Description
	wassotest.WaitFor(t, time.Minute, "both runs of flaky to finish", func() bool {
		d, err = store.Describe(ctx, db.Pool, "flaky")
		require.NoError(t, err)
		return len(d.Runs) == 2 && !d.Runs[0].FinalizedAt.IsZero() && !d.Runs[1].FinalizedAt.IsZero()
	})
	newest, oldest := d.Runs[0], d.Runs[1]
	require.Equal(t, ok.JobID, newest.JobID, "newest first")
	require.Equal(t, failed.JobID, oldest.JobID)
	require.NotEqual(t, other.JobID, newest.JobID)

	require.Equal(t, rivertype.JobStateCompleted, newest.State)
	require.Equal(t, 1, newest.Attempt)
	require.Empty(t, newest.LastError)
	require.Equal(t, ok.Slot, newest.Slot)
	require.Equal(t, newest.FinalizedAt.Sub(newest.AttemptedAt), newest.Duration)
	require.Positive(t, newest.Duration)

	require.Equal(t, rivertype.JobStateDiscarded, oldest.State, "one attempt, failed")
	require.Equal(t, 1, oldest.Attempt)
	require.Equal(t, 1, oldest.MaxAttempts)
	require.Equal(t, "the club's API answered 503", oldest.LastError)
	require.Equal(t, failed.Slot, oldest.Slot)

	// The counters are the schedule's.
	require.Equal(t, int64(2), d.Schedule.TotalRunCount)

	// JSON of a run.
	raw, err := json.Marshal(d)
	require.NoError(t, err)
	var generic struct {
		Runs []map[string]any `json:"runs"`
	}
	require.NoError(t, json.Unmarshal(raw, &generic))
	require.Len(t, generic.Runs, 2)
	require.EqualValues(t, failed.JobID, generic.Runs[1]["job_id"])
	require.Equal(t, "discarded", generic.Runs[1]["state"])
	require.Equal(t, "the club's API answered 503", generic.Runs[1]["last_error"])
	require.Equal(t, newest.Duration.String(), generic.Runs[0]["duration"])
	require.Equal(t, schedule.FormatSlot(ok.Slot), generic.Runs[0]["slot"])

	// In the caller's transaction too, which it leaves usable.
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		d, err := store.Describe(ctx, tx, "flaky-2")
		if err != nil {
			return err
		}
		require.Len(t, d.Runs, 1)
		require.Equal(t, other.JobID, d.Runs[0].JobID)
		_, err = store.Describe(ctx, tx, "no-such")
		require.ErrorIs(t, err, schedule.ErrNotFound)
		_, err = tx.Exec(ctx, `SELECT 1`)
		return err
	})
	require.NoError(t, err)
}
