package attendance_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// insertOnlyClient is a River client that only inserts, as a backend that
// leaves the work to the runners holds.
func insertOnlyClient(t *testing.T, db *wassotest.DB) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{Schema: db.Schema})
	require.NoError(t, err)
	return client
}

func TestScheduleEventTx(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("CommitsWithTheEvent", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		client := insertOnlyClient(t, db)
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		deadline := time.Now().Add(time.Hour).Truncate(time.Microsecond).UTC()

		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // committed below
		event := djangoEvent(t, tx, club.GenerationID, deadline)
		res, err := attendance.ScheduleEventTx(ctx, tx, client, event)
		require.NoError(t, err)
		require.Equal(t, deadline, res.Deadline)
		require.False(t, res.AlreadySettled)
		require.False(t, res.Job.UniqueSkippedAsDuplicate)
		// Inserted scheduled, waiting for its deadline in the exact queue
		// (the Discoverer makes it available just before).
		rivertest.RequireInsertedTx[*riverpgxv5.Driver](ctx, t, tx, attendance.NewSettleEventArgs(event, deadline), &rivertest.RequireInsertedOpts{
			Queue:       attendance.QueueExact,
			ScheduledAt: deadline,
			Schema:      db.Schema,
			State:       rivertype.JobStateScheduled,
		})
		require.NoError(t, tx.Commit(ctx))

		require.Equal(t, "api", queryString(t, db.Pool, `SELECT source FROM wasso_deadline_plan WHERE event_id = $1 AND deadline = $2`, event, deadline))

		// Scheduling again (the backend saved the event twice) inserts
		// nothing new.
		res, err = attendance.ScheduleEvent(ctx, db.Pool, client, event)
		require.NoError(t, err)
		require.True(t, res.Job.UniqueSkippedAsDuplicate)
		require.Len(t, settleJobsOf(t, db.Pool, event), 1)
	})

	t.Run("RollsBackWithTheEvent", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		client := insertOnlyClient(t, db)
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, testNow.Add(-48*time.Hour))
		require.NoError(t, err)

		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		event := djangoEvent(t, tx, club.GenerationID, time.Now().Add(time.Hour))
		_, err = attendance.ScheduleEventTx(ctx, tx, client, event)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))

		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_job`))
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_deadline_plan`))
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM events`))
	})

	t.Run("EventNotFound", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		_, err := attendance.ScheduleEvent(ctx, db.Pool, insertOnlyClient(t, db), 42)
		require.ErrorIs(t, err, attendance.ErrEventNotFound)
		require.ErrorContains(t, err, "schedule event 42")
	})

	t.Run("AlreadySettled", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		event := djangoEvent(t, db.Pool, club.GenerationID, time.Now().Add(-time.Minute))
		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)

		scheduled, err := attendance.ScheduleEvent(ctx, db.Pool, insertOnlyClient(t, db), event)
		require.NoError(t, err)
		require.True(t, scheduled.AlreadySettled)
		require.Nil(t, scheduled.Job)
		require.Empty(t, settleJobsOf(t, db.Pool, event))
	})

	t.Run("NilInserter", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		_, err := attendance.ScheduleEvent(ctx, db.Pool, nil, 1)
		require.ErrorIs(t, err, attendance.ErrInvalidParams)
	})
}

// TestExactTimeHook shows what the hook changes: a settle_event job
// scheduled within ExactPromoteAhead is stored available (River fetches it
// once scheduled_at has passed), while one scheduled later stays scheduled
// (the Discoverer makes it available just before its instant), as does a
// job of another kind (it waits for River's five-second job scheduler).
func TestExactTimeHook(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := insertOnlyClient(t, db)
	at := time.Now().Add(time.Hour)
	soon := time.Now().Add(attendance.ExactPromoteAhead / 2)

	exact, err := client.Insert(ctx, attendance.NewSettleEventArgs(1, at), &river.InsertOpts{ScheduledAt: at})
	require.Error(t, err, "an insert-only client without a pool can only insert in a transaction")
	require.Nil(t, exact)

	var due *rivertype.JobInsertResult
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		exact, err = client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(1, at), &river.InsertOpts{ScheduledAt: at})
		require.NoError(t, err)
		due, err = client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(2, soon), &river.InsertOpts{ScheduledAt: soon})
		require.NoError(t, err)
		plain, err := client.InsertTx(ctx, tx, attendance.SweepArgs{}, &river.InsertOpts{ScheduledAt: at})
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateScheduled, plain.Job.State)
		return nil
	}))
	require.Equal(t, rivertype.JobStateScheduled, exact.Job.State)
	require.WithinDuration(t, at, exact.Job.ScheduledAt, time.Millisecond)
	require.Equal(t, attendance.QueueExact, exact.Job.Queue)
	require.Equal(t, rivertype.JobStateAvailable, due.Job.State)
	require.WithinDuration(t, soon, due.Job.ScheduledAt, time.Millisecond)
}

// TestDiscovererPromotes checks that a Discoverer pass makes a QueueExact
// job available once its instant is within ExactPromoteAhead, keeping its
// scheduled_at, and leaves a later one scheduled.
func TestDiscovererPromotes(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := insertOnlyClient(t, db)
	d, err := attendance.NewDiscoverer(db.Pool, attendance.DiscoverConfig{RiverSchema: db.Schema})
	require.NoError(t, err)
	d.SetInserter(client)

	// A pass well before the deadline leaves it scheduled. The pass must
	// end before deadline - ExactPromoteAhead for that to hold; when a
	// loaded machine holds it up past that instant, its outcome says
	// nothing, and the test tries again with the deadlines of new events.
	var (
		deadline, later time.Time
		near, far       *rivertype.JobInsertResult
	)
	for attempt := 1; ; attempt++ {
		deadline = time.Now().Add(attendance.ExactPromoteAhead + 1500*time.Millisecond).Truncate(time.Microsecond).UTC()
		later = time.Now().Add(3 * time.Minute).Truncate(time.Microsecond).UTC()
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			near, err = client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(int64(2*attempt-1), deadline), &river.InsertOpts{ScheduledAt: deadline})
			require.NoError(t, err)
			far, err = client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(int64(2*attempt), later), &river.InsertOpts{ScheduledAt: later})
			return err
		}))
		require.Equal(t, rivertype.JobStateScheduled, near.Job.State)
		require.Equal(t, rivertype.JobStateScheduled, far.Job.State, "a deadline minutes ahead is stored scheduled")

		_, err = d.RunOnce(ctx)
		require.NoError(t, err)
		passed := time.Now()
		if passed.Before(deadline.Add(-attendance.ExactPromoteAhead)) {
			require.Equal(t, "scheduled", jobState(t, db, near.Job.ID))
			break
		}
		require.Less(t, attempt, 5, "the first pass never ended before deadline - %s", attendance.ExactPromoteAhead)
		t.Logf("attempt %d: the first pass ended %s before the deadline, too late; trying again", attempt, deadline.Sub(passed))
	}

	// A pass at deadline - 1 s makes it available, scheduled_at unchanged.
	time.Sleep(time.Until(deadline.Add(-time.Second)))
	_, err = d.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, "available", jobState(t, db, near.Job.ID))
	require.True(t, deadline.Equal(queryTime(t, db.Pool, `SELECT scheduled_at FROM river_job WHERE id = $1`, near.Job.ID)))
	require.Equal(t, "scheduled", jobState(t, db, far.Job.ID))
	require.True(t, later.Equal(queryTime(t, db.Pool, `SELECT scheduled_at FROM river_job WHERE id = $1`, far.Job.ID)))
}

func jobState(t *testing.T, db *wassotest.DB, id int64) string {
	t.Helper()
	return queryString(t, db.Pool, `SELECT state::text FROM river_job WHERE id = $1`, id)
}

func TestDiscoverTx(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := insertOnlyClient(t, db)
	then := testNow.Add(-48 * time.Hour)
	club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, then)
	require.NoError(t, err)
	deleted, err := seed.CreateClub(ctx, db.Pool, "Gone", 2, then)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE club_generation SET is_deleted = true WHERE id = $1`, deleted.GenerationID)
	require.NoError(t, err)

	var (
		dueUnsettled = djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(-time.Hour))
		dueSettled   = djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(-2*time.Hour))
		tooOld       = djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(-attendance.LookbackDefault-time.Second))
		soon         = djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(time.Minute))
		atHorizon    = djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(attendance.DiscoveryHorizonDefault))
		beyond       = djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(attendance.DiscoveryHorizonDefault+10*time.Second))
		ofDeleted    = djangoEvent(t, db.Pool, deleted.GenerationID, testNow.Add(time.Minute))
		viaAPI       = djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(2*time.Minute))
		_            = ofDeleted
		_            = tooOld
		_            = beyond
		deadlineOf   = func(id int64) time.Time {
			return queryTime(t, db.Pool, `SELECT wasso_deadline(start_datetime, fail_minutes) FROM events WHERE id = $1`, id)
		}
		discoverAt = func(now time.Time) []attendance.DiscoveredEvent {
			var found []attendance.DiscoveredEvent
			require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				var err error
				found, err = attendance.DiscoverTx(ctx, tx, client, attendance.DiscoverParams{Now: now})
				return err
			}))
			return found
		}
	)
	_, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow, EventIDs: []int64{dueSettled}})
	require.NoError(t, err)
	_, err = attendance.ScheduleEvent(ctx, db.Pool, client, viaAPI)
	require.NoError(t, err)

	found := discoverAt(testNow)
	require.Equal(t, []attendance.DiscoveredEvent{
		{EventID: dueUnsettled, Deadline: deadlineOf(dueUnsettled).UTC()},
		{EventID: soon, Deadline: deadlineOf(soon).UTC()},
		{EventID: atHorizon, Deadline: deadlineOf(atHorizon).UTC()},
	}, found, "in the window, neither settled nor planned, generation not deleted; ordered by deadline")
	for _, ev := range found {
		jobs := settleJobsOf(t, db.Pool, ev.EventID)
		require.Len(t, jobs, 1)
		require.Equal(t, "available", jobs[0].State)
		require.True(t, jobs[0].ScheduledAt.Equal(ev.Deadline))
	}
	require.Equal(t, "discovery", queryString(t, db.Pool, `SELECT source FROM wasso_deadline_plan WHERE event_id = $1`, soon))

	require.Empty(t, discoverAt(testNow), "a second pass finds everything planned")
	require.Empty(t, discoverAt(testNow.Add(time.Second)))

	// Django moves one event later and another earlier, with no
	// updated_at change: both are planned again for their new deadlines.
	_, err = db.Pool.Exec(ctx, `UPDATE events SET start_datetime = start_datetime + interval '5 minutes' WHERE id = $1`, soon)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE events SET fail_minutes = 10 WHERE id = $1`, atHorizon)
	require.NoError(t, err)
	found = discoverAt(testNow.Add(time.Second))
	require.Equal(t, []attendance.DiscoveredEvent{
		{EventID: soon, Deadline: deadlineOf(soon).UTC()},
		{EventID: atHorizon, Deadline: deadlineOf(atHorizon).UTC()},
	}, found)
	require.Len(t, settleJobsOf(t, db.Pool, soon), 2, "the old job stays; it will find nothing due")

	// The beyond-horizon event is found once it enters the horizon.
	found = discoverAt(testNow.Add(10 * time.Second))
	require.Equal(t, []attendance.DiscoveredEvent{{EventID: beyond, Deadline: deadlineOf(beyond).UTC()}}, found)

	// A pass whose transaction rolls back leaves neither plans nor jobs.
	late := djangoEvent(t, db.Pool, club.GenerationID, testNow.Add(3*time.Minute))
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	found, err = attendance.DiscoverTx(ctx, tx, client, attendance.DiscoverParams{Now: testNow.Add(10 * time.Second)})
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.NoError(t, tx.Rollback(ctx))
	require.Empty(t, settleJobsOf(t, db.Pool, late))
	require.Len(t, discoverAt(testNow.Add(10*time.Second)), 1)

	_, err = attendance.DiscoverTx(ctx, nil, client, attendance.DiscoverParams{Horizon: -time.Second})
	require.ErrorIs(t, err, attendance.ErrInvalidParams)
}

// TestExactDeadlines runs a client as a runner does and checks that each
// event is settled once its deadline passes, for its current deadline,
// however it was written or changed. Deadlines are a second or two away;
// the checks wait for the outcome and compare instants recorded by the
// database, never how long anything took.
func TestExactDeadlines(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{MaxConns: 20})
	client := startRunner(t, db, wassoriver.Config{NoNotify: true})
	club := goClub(t, db, 3)
	soon := func(d time.Duration) time.Time { return time.Now().Add(d).Truncate(time.Microsecond) }
	absentRows := func(event int64) int {
		return count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, event)
	}
	createAndSchedule := func(t *testing.T, deadline time.Time) int64 {
		var event int64
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			event = djangoEvent(t, tx, club.GenerationID, deadline)
			_, err := attendance.ScheduleEventTx(ctx, tx, client, event)
			return err
		}))
		return event
	}
	// beforeDeadline calls write, which writes an event with a deadline
	// 1.5 s away and changes it, and returns the event once the change
	// has committed before that deadline: only then does the outcome tell
	// what the change did. When a loaded machine holds the change up past
	// the deadline, it tries again with a new event.
	beforeDeadline := func(t *testing.T, write func(deadline time.Time) int64) int64 {
		t.Helper()
		for attempt := 1; ; attempt++ {
			deadline := soon(1500 * time.Millisecond)
			event := write(deadline)
			if time.Now().Before(deadline) {
				return event
			}
			require.Less(t, attempt, 5, "the change never committed before the deadline")
			t.Logf("attempt %d: event %d changed %s after its deadline, too late; trying again", attempt, event, time.Since(deadline))
		}
	}
	// jobsDone waits until the event has n settle_event jobs, all
	// completed, and returns them.
	jobsDone := func(t *testing.T, event int64, n int) []settleJob {
		var jobs []settleJob
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			got, err := querySettleJobs(db.Pool, event)
			require.NoError(c, err)
			require.GreaterOrEqual(c, len(got), n, "settle_event jobs of event %d", event)
			for _, j := range got {
				require.Equal(c, "completed", j.State, "job %d", j.ID)
			}
			jobs = got
		}, eventuallyWait, 20*time.Millisecond)
		return jobs
	}

	t.Run("ThroughTheAPI", func(t *testing.T) {
		t.Parallel()

		deadline := soon(1500 * time.Millisecond)
		event := createAndSchedule(t, deadline)
		requireSettledFor(t, db.Pool, event, deadline)
		require.Equal(t, 3, absentRows(event))
	})

	t.Run("WrittenByDjango", func(t *testing.T) {
		t.Parallel()

		deadline := soon(3 * time.Second)
		event := djangoEvent(t, db.Pool, club.GenerationID, deadline)
		s := requireSettledFor(t, db.Pool, event, deadline)
		require.Equal(t, 1, s.SettleCount)
		require.Equal(t, 3, absentRows(event))
		require.Equal(t, "discovery", queryString(t, db.Pool, `SELECT source FROM wasso_deadline_plan WHERE event_id = $1`, event))
	})

	t.Run("CreatedPastItsDeadline", func(t *testing.T) {
		t.Parallel()

		deadline := soon(-10 * time.Minute)
		event := djangoEvent(t, db.Pool, club.GenerationID, deadline)
		requireSettledFor(t, db.Pool, event, deadline)
		require.Equal(t, 3, absentRows(event))
	})

	t.Run("MovedEarlier", func(t *testing.T) {
		t.Parallel()

		// Django creates the event an hour out and the runner schedules
		// it, then the organiser moves it to start now.
		event := createAndSchedule(t, soon(time.Hour))
		deadline := soon(2 * time.Second)
		_, err := db.Pool.Exec(ctx, `UPDATE events SET start_datetime = $2 WHERE id = $1`, event, deadline.Add(-30*time.Minute))
		require.NoError(t, err)
		requireSettledFor(t, db.Pool, event, deadline)
		require.Equal(t, 3, absentRows(event))
		jobs := settleJobsOf(t, db.Pool, event)
		require.Len(t, jobs, 2)
		require.Equal(t, "scheduled", jobs[0].State, "the job for the old deadline still waits; it will find nothing due")
	})

	t.Run("MovedLater", func(t *testing.T) {
		t.Parallel()

		var deadline time.Time
		event := beforeDeadline(t, func(first time.Time) int64 {
			event := createAndSchedule(t, first)
			deadline = soon(4 * time.Second)
			_, err := db.Pool.Exec(ctx, `UPDATE events SET fail_minutes = 30 + 1, start_datetime = $2 WHERE id = $1`, event, deadline.Add(-31*time.Minute))
			require.NoError(t, err)
			return event
		})

		// The first deadline's job runs and finds nothing due.
		require.Eventually(t, func() bool {
			jobs, err := querySettleJobs(db.Pool, event)
			return err == nil && len(jobs) > 0 && jobs[0].State == "completed"
		}, eventuallyWait, 20*time.Millisecond)
		first0 := settleJobsOf(t, db.Pool, event)[0]
		require.False(t, first0.Output.Settled)
		if _, ok := settlementOf(t, db.Pool, event); ok {
			// Only the new deadline may have been settled by now.
			s, _ := settlementOf(t, db.Pool, event)
			require.True(t, s.Deadline.Equal(deadline))
		}

		s := requireSettledFor(t, db.Pool, event, deadline)
		require.Equal(t, 1, s.SettleCount, "never settled for the first deadline")
		require.Equal(t, 3, absentRows(event))
		jobs := jobsDone(t, event, 2)
		require.True(t, jobs[1].Output.Settled)
	})

	t.Run("DeletedBeforeItsDeadline", func(t *testing.T) {
		t.Parallel()

		event := beforeDeadline(t, func(deadline time.Time) int64 {
			event := createAndSchedule(t, deadline)
			_, err := db.Pool.Exec(ctx, `DELETE FROM events WHERE id = $1`, event)
			require.NoError(t, err)
			return event
		})

		jobs := jobsDone(t, event, 1)
		require.Len(t, jobs, 1)
		require.False(t, jobs[0].Output.Settled)
		_, ok := settlementOf(t, db.Pool, event)
		require.False(t, ok)
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, event))
	})

	t.Run("CreatedInARolledBackTransaction", func(t *testing.T) {
		t.Parallel()

		deadline := soon(time.Second)
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		event := djangoEvent(t, tx, club.GenerationID, deadline)
		_, err = attendance.ScheduleEventTx(ctx, tx, client, event)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))

		// A later event, committed, is settled: by then the rolled-back
		// one would have been too.
		witnessDeadline := deadline.Add(time.Second)
		witness := createAndSchedule(t, witnessDeadline)
		requireSettledFor(t, db.Pool, witness, witnessDeadline)

		require.Empty(t, settleJobsOf(t, db.Pool, event), "nothing scheduled")
		_, ok := settlementOf(t, db.Pool, event)
		require.False(t, ok, "nothing settled")
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, event))
	})
}

func queryString(t *testing.T, db seed.DB, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRow(context.Background(), sql, args...).Scan(&s))
	return s
}

func queryTime(t *testing.T, db seed.DB, sql string, args ...any) time.Time {
	t.Helper()
	var at time.Time
	require.NoError(t, db.QueryRow(context.Background(), sql, args...).Scan(&at))
	return at
}

// TestDiscovererWakesExactQueue: the loop wakes the producers of
// QueueExact at a job's instant, with the notification River's client
// sends when it inserts a job (channel "<schema>.river_insert", payload
// naming the queue), which River's producers listen for; never before the
// instant, since River's fetch would not take the job then.
func TestDiscovererWakesExactQueue(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := insertOnlyClient(t, db)
	d, err := attendance.NewDiscoverer(db.Pool, attendance.DiscoverConfig{RiverSchema: db.Schema})
	require.NoError(t, err)
	d.SetInserter(client)

	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{db.Schema + ".river_insert"}.Sanitize())
	require.NoError(t, err)

	deadline := time.Now().Add(attendance.ExactPromoteAhead + 500*time.Millisecond).Truncate(time.Millisecond).UTC()
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(1, deadline), &river.InsertOpts{ScheduledAt: deadline})
		return err
	}))

	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	waitCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	n, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err, "no wake within 10 s")
	var dbNow time.Time
	require.NoError(t, conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&dbNow))
	require.JSONEq(t, `{"queue": "`+attendance.QueueExact+`"}`, n.Payload)
	require.False(t, dbNow.Before(deadline), "woken at %s, before the job's instant %s", dbNow, deadline)
}

// TestPassCheckSkipsHeldJobs: a waiting job whose row another
// transaction holds (River's own scheduler promoting it, which takes over a
// second for a burst) is skipped rather than waited for, and its instant is
// still reported, so that the producers are woken at it once River has
// made it available. A job beyond the window is left alone. The same
// statement says whether an event needs a job.
func TestPassCheckSkipsHeldJobs(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := insertOnlyClient(t, db)
	deadline := dbNow(t, db.Pool).Add(3 * time.Second).Truncate(time.Millisecond).UTC()
	insert := func(event int64, at time.Time) int64 {
		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			res, err := client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(event, at), &river.InsertOpts{ScheduledAt: at})
			if err != nil {
				return err
			}
			id = res.Job.ID
			// Waiting as a job inserted long before its instant does.
			_, err = tx.Exec(ctx, `UPDATE river_job SET state = 'scheduled' WHERE id = $1`, id)
			return err
		}))
		return id
	}
	held := insert(1, deadline)
	free := insert(2, deadline.Add(time.Millisecond))
	far := insert(3, deadline.Add(time.Hour))

	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `SELECT id FROM river_job WHERE id = $1 FOR UPDATE`, held)
	require.NoError(t, err)

	// Were the held row waited for, this would end at the timeout.
	passCtx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	n, instants, pending, err := attendance.PassCheck(passCtx, db.Pool, db.Schema, attendance.ExactPromoteAhead)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the free job is promoted")
	require.Len(t, instants, 2)
	require.True(t, instants[0].Equal(deadline), "instants %v", instants)
	require.True(t, instants[1].Equal(deadline.Add(time.Millisecond)), "instants %v", instants)
	require.False(t, pending, "no event needs a job")

	state := func(id int64) string {
		var s string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
		return s
	}
	require.Equal(t, "scheduled", state(held))
	require.Equal(t, "available", state(free))
	require.Equal(t, "scheduled", state(far))

	// An event written as Django does needs a job until a pass plans it.
	club := goClub(t, db, 2)
	djangoEvent(t, db.Pool, club.GenerationID, deadline.Add(time.Minute))
	_, _, pending, err = attendance.PassCheck(ctx, db.Pool, db.Schema, attendance.ExactPromoteAhead)
	require.NoError(t, err)
	require.True(t, pending, "the new event needs a job")
	d, err := attendance.NewDiscoverer(db.Pool, attendance.DiscoverConfig{RiverSchema: db.Schema})
	require.NoError(t, err)
	d.SetInserter(client)
	found, err := d.RunOnce(ctx)
	require.NoError(t, err)
	require.Len(t, found, 1)
	_, _, pending, err = attendance.PassCheck(ctx, db.Pool, db.Schema, attendance.ExactPromoteAhead)
	require.NoError(t, err)
	require.False(t, pending, "planned by the pass")
}

// TestDiscovererRecordsEachInstantOnce: every pass reports the instants of
// all jobs still waiting, with a clock offset that differs by a few
// microseconds each time; each instant to come gets its two wakes once,
// and one reported after it has passed a wake at once.
func TestDiscovererRecordsEachInstantOnce(t *testing.T) {
	t.Parallel()

	db := wassotest.NewDB(t, wassotest.Options{})
	d, err := attendance.NewDiscoverer(db.Pool, attendance.DiscoverConfig{RiverSchema: db.Schema})
	require.NoError(t, err)
	at := time.Now().Add(5 * time.Second).Truncate(time.Millisecond)
	later := at.Add(time.Second)
	attendance.AddWakes(d, []time.Time{at}, 0)
	attendance.AddWakes(d, []time.Time{at, later}, 30*time.Microsecond)
	attendance.AddWakes(d, []time.Time{at, later}, -20*time.Microsecond)
	wakes := attendance.Wakes(d)
	require.Len(t, wakes, 4, "two wakes for each of two instants: %v", wakes)
	require.True(t, wakes[0].After(at), "the first wake follows its instant")
	require.True(t, slices.IsSortedFunc(wakes, time.Time.Compare))

	// An instant reported again once past (its job still waits) gets a
	// wake at once.
	past := time.Now().Add(-300 * time.Millisecond).Truncate(time.Millisecond)
	attendance.AddWakes(d, []time.Time{past}, 0)
	wakes = attendance.Wakes(d)
	require.Len(t, wakes, 5)
	require.False(t, wakes[0].After(time.Now()), "a wake due now: %v", wakes)
}
