package attendance_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// TestSettleFirstNotCrowdedOut gives a settlement its own event with the
// latest deadline of many due ones and a batch too small for all: the
// own event is claimed, and the rest of the batch is filled with the
// earliest deadlines, then the lowest ids.
func TestSettleFirstNotCrowdedOut(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club := goClub(t, db, 2)
	own := dueEvent(t, db.Pool, club.GenerationID, time.Minute)
	var older []int64
	for i := range 6 {
		// Deadlines from 7 minutes ago to 2 minutes ago, created newest
		// first so that id order and deadline order disagree.
		older = append(older, dueEvent(t, db.Pool, club.GenerationID, time.Duration(2+i)*time.Minute))
	}
	sameDeadline := dueEvent(t, db.Pool, club.GenerationID, 7*time.Minute)

	var res *attendance.SettleResult
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		res, err = attendance.SettleDueTx(ctx, tx, attendance.SettleParams{Now: testNow, First: []int64{own}, Limit: 4})
		return err
	}))
	require.Equal(t, 4, res.ProcessedEvents)
	var got []int64
	for _, ev := range res.Events {
		got = append(got, ev.EventID)
	}
	// The earliest deadline is shared by older[5] and sameDeadline (lower
	// id first), then older[4].
	require.ElementsMatch(t, []int64{own, older[5], sameDeadline, older[4]}, got)
	require.True(t, res.Now.Equal(testNow), "one instant for the whole batch")
	require.Equal(t, 4, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE settled_at = $1`, testNow))

	// The next settlement of the same kind takes the rest.
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		res, err = attendance.SettleDueTx(ctx, tx, attendance.SettleParams{Now: testNow, First: []int64{own}, Limit: 10})
		return err
	}))
	require.Equal(t, 4, res.ProcessedEvents)
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE settle_count <> 1`))
}

// TestSettleBurstSkipsHeldEvents holds a burst's transaction open and
// starts a second one: the second claims its own event and the due events
// the first does not hold, without waiting for the first.
func TestSettleBurstSkipsHeldEvents(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club := goClub(t, db, 2)
	events := dueEvents(t, db, club.GenerationID, 6)

	first, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = first.Rollback(ctx) }()
	res, err := attendance.SettleDueTx(ctx, first, attendance.SettleParams{Now: testNow, First: []int64{events[0]}, Limit: 3})
	require.NoError(t, err)
	require.Equal(t, 3, res.ProcessedEvents, "its own and the two lowest ids")

	second, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = second.Rollback(ctx) }()
	res, err = attendance.SettleDueTx(ctx, second, attendance.SettleParams{Now: testNow, First: []int64{events[5]}})
	require.NoError(t, err, "returned while the first burst is open: it did not wait for it")
	var got []int64
	for _, ev := range res.Events {
		got = append(got, ev.EventID)
	}
	require.Equal(t, events[3:], got)
	require.NoError(t, second.Commit(ctx))
	require.NoError(t, first.Commit(ctx))
	require.Equal(t, 6, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE settle_count = 1`))
}

// burstJob is what a settle_event job recorded.
type burstJob struct {
	EventID int64
	State   string
	Output  attendance.SettleEventOutput
}

// burstJobs returns the settle_event jobs, oldest first. It returns errors
// instead of failing the test, for Eventually conditions.
func burstJobs(db seed.DB) ([]burstJob, error) {
	rows, err := db.Query(context.Background(), `
		SELECT (args ->> 'event_id')::bigint, state::text, coalesce(metadata -> 'output', '{}'::jsonb)
		FROM river_job WHERE kind = 'attendance.settle_event' ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var out []burstJob
	var j burstJob
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&j.EventID, &j.State, &raw}, func() error {
		j.Output = attendance.SettleEventOutput{}
		if err := json.Unmarshal(raw, &j.Output); err != nil {
			return err
		}
		out = append(out, j)
		return nil
	})
	return out, err
}

// dbNow is the database clock, which deadlines are compared with.
func dbNow(t *testing.T, db seed.DB) time.Time {
	t.Helper()
	return queryTime(t, db, `SELECT now()`)
}

// TestSettleBurst writes 200 events sharing one deadline with plain SQL,
// as the Django backend does, and lets a runner's jobs settle them: every
// event is settled once, not before the deadline, with its notice
// enqueued, and the jobs settled them in batches, each event counted in
// exactly one job's batch.
func TestSettleBurst(t *testing.T) {
	t.Parallel()

	const events = 200
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	startRunner(t, db, wassoriver.Config{})
	club, err := seed.CreateClub(ctx, db.Pool, "Go", 3, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	deadline := dbNow(t, db.Pool).Add(5 * time.Second).Truncate(time.Microsecond)
	ids := make([]int64, events)
	for i := range ids {
		ids[i] = djangoEvent(t, db.Pool, club.GenerationID, deadline)
	}

	for _, id := range ids {
		s := requireSettledFor(t, db.Pool, id, deadline)
		require.Equal(t, 1, s.SettleCount)
	}
	require.Equal(t, events, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement`))
	require.Equal(t, 3*events, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE status = 3`))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM (SELECT 1 FROM attendances GROUP BY event_id, generation_mapping_id HAVING count(*) > 1) d`))
	require.Equal(t, events, count(t, db.Pool, `
		SELECT count(DISTINCT (args ->> 'event_id')::bigint) FROM river_job
		WHERE kind = 'attendance.notify_absent' AND (args ->> 'event_id')::bigint = ANY($1)`, ids), "one notice per event")
	require.Equal(t, events, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.notify_absent'`))

	// Every job completes; the batches add up to the events, each settled
	// by one job, and the jobs that settled their own event say so.
	var jobs []burstJob
	require.Eventually(t, func() bool {
		var err error
		jobs, err = burstJobs(db.Pool)
		if err != nil || len(jobs) < events {
			return false
		}
		for _, j := range jobs {
			if j.State != "completed" {
				return false
			}
		}
		return true
	}, eventuallyWait, 20*time.Millisecond)
	var batched, own, largest int
	for _, j := range jobs {
		batched += j.Output.BatchEvents
		largest = max(largest, j.Output.BatchEvents)
		if j.Output.Settled {
			own++
			require.Positive(t, j.Output.BatchEvents)
		}
	}
	require.Equal(t, events, batched)
	require.LessOrEqual(t, largest, attendance.BurstLimitDefault)
	require.Greater(t, largest, 1, "some job settled other events than its own")
	require.Less(t, own, events, "not one job per event")
}

// TestSettleBurstMovedDeadlines writes events sharing one deadline and,
// before it, moves some of them later and some earlier (still in the
// future), with plain SQL as the Django backend does: the burst at the old
// deadline leaves the moved events alone, and each is settled once, at
// its new deadline.
func TestSettleBurstMovedDeadlines(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	startRunner(t, db, wassoriver.Config{})
	club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	plannedJobs := func(ids []int64) int {
		n, err := queryCount(db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.settle_event' AND (args->>'event_id')::bigint = ANY($1)`, ids)
		if err != nil {
			return -1
		}
		return n
	}
	// Wait until the runner leads and its discovery plans jobs (a leader
	// may be elected seconds after the start): a probe event five minutes
	// away, within the discovery's horizon, gets its job.
	probe := djangoEvent(t, db.Pool, club.GenerationID, dbNow(t, db.Pool).Add(5*time.Minute))
	require.Eventually(t, func() bool { return plannedJobs([]int64{probe}) == 1 }, eventuallyWait, 20*time.Millisecond)

	// The events are written, planned and moved before their shared
	// deadline: when a loaded machine holds that up past the deadline,
	// the test tries again with new events and a new deadline (the checks
	// below are on the events of the last attempt).
	var (
		ids, later, earlier                      []int64
		deadline, laterDeadline, earlierDeadline time.Time
	)
	move := func(events []int64, to time.Time) {
		_, err := db.Pool.Exec(ctx, `UPDATE events SET start_datetime = $2 WHERE id = ANY($1)`, events, to.Add(-30*time.Minute))
		require.NoError(t, err)
	}
	for attempt := 1; ; attempt++ {
		deadline = dbNow(t, db.Pool).Add(6 * time.Second).Truncate(time.Microsecond)
		ids = nil
		for range 60 {
			ids = append(ids, djangoEvent(t, db.Pool, club.GenerationID, deadline))
		}
		// Wait until the runner has planned the jobs for the shared
		// deadline.
		require.Eventually(t, func() bool { return plannedJobs(ids) >= len(ids) }, eventuallyWait, 20*time.Millisecond)

		later, earlier = ids[:10], ids[10:20]
		laterDeadline = deadline.Add(1500 * time.Millisecond)
		now := dbNow(t, db.Pool)
		if now.Before(deadline.Add(-2 * time.Second)) {
			earlierDeadline = now.Add(time.Second).Truncate(time.Microsecond)
			move(later, laterDeadline)
			move(earlier, earlierDeadline)
			if dbNow(t, db.Pool).Before(deadline) {
				break
			}
		}
		require.Less(t, attempt, 3, "the test machine is too slow to move the events before their deadline")
		t.Logf("attempt %d: the events were not planned and moved 2 s before their deadline; trying again", attempt)
	}

	for _, id := range ids {
		want := deadline
		switch {
		case containsID(later, id):
			want = laterDeadline
		case containsID(earlier, id):
			want = earlierDeadline
		}
		s := requireSettledFor(t, db.Pool, id, want)
		require.Equal(t, 1, s.SettleCount, "event %d never settled for another deadline", id)
	}
	require.Equal(t, 2*len(ids), count(t, db.Pool, `SELECT count(*) FROM attendances WHERE status = 3 AND event_id = ANY($1)`, ids))
	require.Equal(t, len(ids), count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.notify_absent' AND (args->>'event_id')::bigint = ANY($1)`, ids))
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
