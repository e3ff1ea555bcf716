package main

// Step 5: the tests. The worker and the planner are each worked once in a
// transaction with rivertest.Worker (fast, no client running); one test
// runs the whole task on a real client, as a runner would; one runs the
// demo.

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

func TestMain(m *testing.M) { wassotest.Main(m) }

type recordingSender struct {
	mu   sync.Mutex
	sent []Reminder
}

func (s *recordingSender) SendReminder(_ context.Context, r Reminder) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, r)
	return nil
}

func (s *recordingSender) all() []Reminder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reminder(nil), s.sent...)
}

// fixture is a club of four (user ids 1000001..1000004) and an event whose
// check-in opened opensAgo ago: member 0 is PRESENT, member 1 was set back
// to UNCHECKED, member 2 is LATE, member 3 has no row.
func fixture(t *testing.T, db seed.DB, opensAt time.Time) (*seed.Club, int64) {
	t.Helper()
	ctx := context.Background()
	then := opensAt.Add(-48 * time.Hour)
	club, err := seed.CreateClub(ctx, db, "Chess club", 4, then)
	require.NoError(t, err)
	event, err := seed.CreateEvent(ctx, db, seed.Event{GenerationID: club.GenerationID, Title: "Weekly meeting", Start: opensAt.Add(10 * time.Minute), StartMinutes: -10, LateMinutes: 5, FailMinutes: 15}, then)
	require.NoError(t, err)
	for _, a := range []struct {
		member int
		status int
		at     time.Duration
	}{
		{0, attendance.StatusPresent, 0},
		{1, attendance.StatusPresent, 0},
		{1, attendance.StatusUnchecked, time.Second},
		{2, attendance.StatusLate, 0},
	} {
		_, err := seed.AddAttendance(ctx, db, event, club.MappingIDs[a.member], a.status, then.Add(a.at))
		require.NoError(t, err)
	}
	return club, event
}

func TestReminderWorker(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	work := func(t *testing.T, tx pgx.Tx, sender Sender, args ReminderArgs) *rivertest.WorkResult {
		tw := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Schema: db.Schema}, &ReminderWorker{DB: tx, Sender: sender})
		res, err := tw.Work(ctx, t, tx, args, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		return res
	}

	t.Run("RemindsWhoHasNotCheckedIn", func(t *testing.T) {
		t.Parallel()

		opensAt := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // test transaction
		_, event := fixture(t, tx, opensAt)
		sender := &recordingSender{}
		res := work(t, tx, sender, ReminderArgs{EventID: event, OpensAt: opensAt})
		require.JSONEq(t, `{"sent":true,"recipients":2}`, string(res.Job.Output()))
		require.Len(t, sender.all(), 1)
		r := sender.all()[0]
		require.Equal(t, []int64{1000002, 1000004}, r.UserIDs, "the member set back to UNCHECKED and the one without a row")
		require.Equal(t, "Chess club", r.ClubName)
		require.Equal(t, "Weekly meeting", r.EventTitle)
	})

	t.Run("SkipsAMovedEvent", func(t *testing.T) {
		t.Parallel()

		opensAt := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // test transaction
		_, event := fixture(t, tx, opensAt)
		sender := &recordingSender{}
		res := work(t, tx, sender, ReminderArgs{EventID: event, OpensAt: opensAt.Add(-time.Hour)})
		require.JSONEq(t, `{"sent":false,"recipients":0,"skipped":"check-in moved to 2026-03-02T09:00:00Z"}`, string(res.Job.Output()))
		res = work(t, tx, sender, ReminderArgs{EventID: event + 1000, OpensAt: opensAt})
		require.JSONEq(t, `{"sent":false,"recipients":0,"skipped":"event deleted"}`, string(res.Job.Output()))
		require.Empty(t, sender.all())
	})
}

func TestPlanReminders(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	soon := time.Now().Add(2 * time.Minute).Truncate(time.Microsecond)
	_, event := fixture(t, db.Pool, soon)
	_, later := fixture(t, db.Pool, time.Now().Add(PlanHorizon+time.Minute))
	_, past := fixture(t, db.Pool, time.Now().Add(-PlanCatchUp-time.Minute))
	justOpened := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	_, caughtUp := fixture(t, db.Pool, justOpened)

	tw := rivertest.NewWorker(t, riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema}, &PlanRemindersWorker{DB: db.Pool})
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		res, err := tw.Work(ctx, t, tx, PlanRemindersArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		return nil
	}))
	jobs := rivertest.RequireManyInserted[*riverpgxv5.Driver](ctx, t, riverpgxv5.New(db.Pool), []rivertest.ExpectedJob{
		{Args: ReminderArgs{EventID: event, OpensAt: soon.UTC()}, Opts: &rivertest.RequireInsertedOpts{
			Queue: attendance.QueueExact, ScheduledAt: soon, Schema: db.Schema, State: rivertype.JobStateScheduled,
		}},
		{Args: ReminderArgs{EventID: caughtUp, OpensAt: justOpened.UTC()}, Opts: &rivertest.RequireInsertedOpts{
			Queue: attendance.QueueExact, ScheduledAt: justOpened, Schema: db.Schema, State: rivertype.JobStateAvailable,
		}},
	})
	require.Len(t, jobs, 2, "the check-in opening within the horizon and the one that just opened; not %d (later) nor %d (long past)", later, past)
}

// TestReminderOnARunner registers the task on a client built by
// wassoriver.NewClient and checks that the planner schedules the reminder
// and that it is sent once, not before check-in opens.
func TestReminderOnARunner(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	opensAt := time.Now().Add(3 * time.Second).Truncate(time.Microsecond)
	_, event := fixture(t, db.Pool, opensAt)

	sender := &recordingSender{}
	config := wassoriver.Config{Schema: db.Schema, NoSchedules: true}
	require.NoError(t, Register(&config, db.Pool, sender))
	client, err := wassoriver.NewClient(db.Pool, config)
	require.NoError(t, err)
	wassotest.StartClient(t, client)

	require.Eventually(t, func() bool { return len(sender.all()) == 1 }, 30*time.Second, 20*time.Millisecond)
	r := sender.all()[0]
	require.Equal(t, event, r.EventID)
	require.Equal(t, []int64{1000002, 1000004}, r.UserIDs)
	var attemptedAt time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT attempted_at FROM river_job WHERE kind = $1`, ReminderKind).Scan(&attemptedAt))
	require.False(t, attemptedAt.Before(opensAt), "started at %s, before check-in opened at %s", attemptedAt, opensAt)
}

func TestDemo(t *testing.T) {
	t.Parallel()

	var out bytes.Buffer
	err := run(context.Background(), []string{"-database-url", wassotest.ServerURL(t), "-opens-in", "2s"}, &out)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "reminded 3 of 4 members")
	require.Equal(t, 1, strings.Count(out.String(), "reminder sent:"))
}

// TestScheduleReminderTx schedules a reminder in the transaction that
// writes the event: committed, the job waits for the opening; rolled
// back, there is none.
func TestScheduleReminderTx(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	require.NoError(t, err)
	opensAt := time.Now().Add(time.Hour).Truncate(time.Microsecond)

	var event int64
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, event = fixture(t, tx, opensAt)
		return ScheduleReminderTx(ctx, tx, client, event)
	}))
	rivertest.RequireInserted[*riverpgxv5.Driver](ctx, t, riverpgxv5.New(db.Pool), ReminderArgs{EventID: event, OpensAt: opensAt.UTC()},
		&rivertest.RequireInsertedOpts{Queue: attendance.QueueExact, ScheduledAt: opensAt, Schema: db.Schema})

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, rolledBack := fixture(t, tx, opensAt)
	require.NoError(t, ScheduleReminderTx(ctx, tx, client, rolledBack))
	require.NoError(t, tx.Rollback(ctx))
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1`, ReminderKind).Scan(&n))
	require.Equal(t, 1, n)

	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return ScheduleReminderTx(ctx, tx, client, 999999) })
	require.ErrorContains(t, err, "read opening of event 999999")
}
