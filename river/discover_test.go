package wassoriver_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// insertOnlyClient is a River client that only inserts, as a backend that
// leaves the work to the runners holds, with ExactTimeHook.
func insertOnlyClient(t *testing.T, db *wassotest.DB) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{
		Schema: db.Schema,
		Hooks:  []rivertype.Hook{&wassoriver.ExactTimeHook{}},
	})
	require.NoError(t, err)
	return client
}

// djangoEvent inserts an event with plain SQL, as the Django backend does,
// whose deadline (start + 30 minutes) is deadline.
func djangoEvent(t *testing.T, db seed.DB, generationID int64, deadline time.Time) int64 {
	t.Helper()
	id, err := seed.CreateEventDueAt(context.Background(), db, generationID, deadline)
	require.NoError(t, err)
	return id
}

func queryTime(t *testing.T, db seed.DB, sql string, args ...any) time.Time {
	t.Helper()
	var at time.Time
	require.NoError(t, db.QueryRow(context.Background(), sql, args...).Scan(&at))
	return at
}

func jobState(t *testing.T, db *wassotest.DB, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

// dbNow is the database clock, which deadlines are compared with.
func dbNow(t *testing.T, db seed.DB) time.Time {
	t.Helper()
	return queryTime(t, db, `SELECT now()`)
}

// TestExactTimeHook shows what the hook changes: a settle_event job
// scheduled within ExactPromoteAhead is stored available (River fetches it
// once scheduled_at has passed), while one scheduled later stays scheduled
// (the Discoverer makes it available just before its instant), as does a
// job of another queue, however soon (it waits for River's five-second job
// scheduler).
func TestExactTimeHook(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	client := insertOnlyClient(t, db)
	at := time.Now().Add(time.Hour)
	soon := time.Now().Add(wassoriver.ExactPromoteAhead / 2)

	exact, err := client.Insert(ctx, attendance.NewSettleEventArgs(1, at), &river.InsertOpts{ScheduledAt: at})
	require.Error(t, err, "an insert-only client without a pool can only insert in a transaction")
	require.Nil(t, exact)

	var due *rivertype.JobInsertResult
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		exact, err = client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(1, at), &river.InsertOpts{ScheduledAt: at})
		require.NoError(t, err)
		due, err = client.InsertTx(ctx, tx, attendance.NewSettleEventArgs(2, soon), &river.InsertOpts{ScheduledAt: soon})
		require.NoError(t, err)
		plain, err := client.InsertTx(ctx, tx, attendance.SweepArgs{}, &river.InsertOpts{ScheduledAt: soon})
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
	d, err := wassoriver.NewDiscoverer(db.Pool, wassoriver.DiscoverConfig{RiverSchema: db.Schema})
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
		deadline = time.Now().Add(wassoriver.ExactPromoteAhead + 1500*time.Millisecond).Truncate(time.Microsecond).UTC()
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
		if passed.Before(deadline.Add(-wassoriver.ExactPromoteAhead)) {
			require.Equal(t, "scheduled", jobState(t, db, near.Job.ID))
			break
		}
		require.Less(t, attempt, 5, "the first pass never ended before deadline - %s", wassoriver.ExactPromoteAhead)
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
	d, err := wassoriver.NewDiscoverer(db.Pool, wassoriver.DiscoverConfig{RiverSchema: db.Schema})
	require.NoError(t, err)
	d.SetInserter(client)

	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{db.Schema + ".river_insert"}.Sanitize())
	require.NoError(t, err)

	deadline := time.Now().Add(wassoriver.ExactPromoteAhead + 500*time.Millisecond).Truncate(time.Millisecond).UTC()
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
	n, instants, pending, err := wassoriver.PassCheck(passCtx, db.Pool, db.Schema, wassoriver.ExactPromoteAhead)
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
	club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, time.Now().Add(-48*time.Hour))
	require.NoError(t, err)
	djangoEvent(t, db.Pool, club.GenerationID, deadline.Add(time.Minute))
	_, _, pending, err = wassoriver.PassCheck(ctx, db.Pool, db.Schema, wassoriver.ExactPromoteAhead)
	require.NoError(t, err)
	require.True(t, pending, "the new event needs a job")
	d, err := wassoriver.NewDiscoverer(db.Pool, wassoriver.DiscoverConfig{RiverSchema: db.Schema})
	require.NoError(t, err)
	d.SetInserter(client)
	found, err := d.RunOnce(ctx)
	require.NoError(t, err)
	require.Len(t, found, 1)
	_, _, pending, err = wassoriver.PassCheck(ctx, db.Pool, db.Schema, wassoriver.ExactPromoteAhead)
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
	d, err := wassoriver.NewDiscoverer(db.Pool, wassoriver.DiscoverConfig{RiverSchema: db.Schema})
	require.NoError(t, err)
	at := time.Now().Add(5 * time.Second).Truncate(time.Millisecond)
	later := at.Add(time.Second)
	wassoriver.AddWakes(d, []time.Time{at}, 0)
	wassoriver.AddWakes(d, []time.Time{at, later}, 30*time.Microsecond)
	wassoriver.AddWakes(d, []time.Time{at, later}, -20*time.Microsecond)
	wakes := wassoriver.Wakes(d)
	require.Len(t, wakes, 4, "two wakes for each of two instants: %v", wakes)
	require.True(t, wakes[0].After(at), "the first wake follows its instant")
	require.True(t, slices.IsSortedFunc(wakes, time.Time.Compare))

	// An instant reported again once past (its job still waits) gets a
	// wake at once.
	past := time.Now().Add(-300 * time.Millisecond).Truncate(time.Millisecond)
	wassoriver.AddWakes(d, []time.Time{past}, 0)
	wakes = wassoriver.Wakes(d)
	require.Len(t, wakes, 5)
	require.False(t, wakes[0].After(time.Now()), "a wake due now: %v", wakes)
}
