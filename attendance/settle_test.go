package attendance_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

const (
	unchecked = attendance.StatusUnchecked
	present   = attendance.StatusPresent
	late      = attendance.StatusLate
	absent    = attendance.StatusAbsent
)

func TestSettleDue(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("MarksLatestUncheckedAndInsertsMissing", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Chess", 7, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		event := dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		m := club.MappingIDs
		before := testNow.Add(-40 * time.Minute)
		add := func(mapping int64, status int, at time.Time) {
			_, err := seed.AddAttendance(ctx, db.Pool, event, mapping, status, at)
			require.NoError(t, err)
		}
		// m[0] has no row.
		add(m[1], unchecked, before)
		add(m[2], present, before)
		add(m[3], late, before)
		// History: an older UNCHECKED row, then PRESENT. The member is present.
		add(m[4], unchecked, before)
		add(m[4], present, before.Add(time.Minute))
		// History: PRESENT, then set back to UNCHECKED. Only the latest moves.
		add(m[5], present, before)
		add(m[5], unchecked, before.Add(time.Minute))
		// Same created_at: the greater id is the latest.
		add(m[6], present, before)
		add(m[6], unchecked, before)

		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)
		require.Equal(t, 3, res.UpdatedRows)
		require.Equal(t, 1, res.CreatedRows)
		require.Equal(t, []int64{m[0], m[1], m[5], m[6]}, res.Events[0].AbsentMappingIDs)
		require.Equal(t, testNow.Add(-time.Minute), res.Events[0].Deadline.In(seed.Seoul))

		created := rowsOf(t, db.Pool, event, m[0])
		require.Len(t, created, 1)
		require.Equal(t, absent, created[0].Status)
		require.True(t, created[0].IsModified)
		require.Nil(t, created[0].CreatedBy)
		for _, ts := range []time.Time{created[0].Timestamp, created[0].CreatedAt, created[0].ModifiedAt} {
			require.True(t, ts.Equal(testNow), "timestamp %s", ts)
		}

		updated := rowsOf(t, db.Pool, event, m[1])
		require.Len(t, updated, 1)
		require.Equal(t, absent, updated[0].Status)
		require.True(t, updated[0].IsModified)
		require.True(t, updated[0].ModifiedAt.Equal(testNow))
		require.True(t, updated[0].CreatedAt.Equal(before), "created_at is kept")

		require.Equal(t, []int{present}, statusesOf(t, db.Pool, event, m[2]))
		require.Equal(t, []int{late}, statusesOf(t, db.Pool, event, m[3]))
		require.Equal(t, []int{unchecked, present}, statusesOf(t, db.Pool, event, m[4]))
		require.Equal(t, []int{present, absent}, statusesOf(t, db.Pool, event, m[5]))
		require.Equal(t, []int{present, absent}, statusesOf(t, db.Pool, event, m[6]))
		untouched := rowsOf(t, db.Pool, event, m[4])
		require.False(t, untouched[0].IsModified, "history rows are never touched")

		var deadline time.Time
		var updatedRows, createdRows, settleCount int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT deadline, updated_rows, created_rows, settle_count FROM wasso_settlement WHERE event_id = $1`, event).
			Scan(&deadline, &updatedRows, &createdRows, &settleCount))
		require.True(t, deadline.Equal(testNow.Add(-time.Minute)))
		require.Equal(t, []int{3, 1, 1}, []int{updatedRows, createdRows, settleCount})
	})

	t.Run("LeavesAloneWhatIsNotDue", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 3, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		future := dueEvent(t, db.Pool, club.GenerationID, -time.Second)
		tooOld := dueEvent(t, db.Pool, club.GenerationID, attendance.LookbackDefault+time.Second)
		exactlyNow := dueEvent(t, db.Pool, club.GenerationID, 0)

		deleted, err := seed.CreateClub(ctx, db.Pool, "Deleted", 3, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, `UPDATE club_generation SET is_deleted = true WHERE id = $1`, deleted.GenerationID)
		require.NoError(t, err)
		ofDeletedGeneration := dueEvent(t, db.Pool, deleted.GenerationID, time.Minute)
		_, err = seed.AddAttendance(ctx, db.Pool, ofDeletedGeneration, deleted.MappingIDs[0], unchecked, testNow.Add(-time.Hour))
		require.NoError(t, err)

		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)
		require.Equal(t, exactlyNow, res.Events[0].EventID, "a deadline equal to now is due")
		for _, ev := range []int64{future, tooOld, ofDeletedGeneration} {
			require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, ev), "event %d", ev)
		}
		require.Equal(t, []int{unchecked}, statusesOf(t, db.Pool, ofDeletedGeneration, deleted.MappingIDs[0]))

		// A longer lookback reaches the old event.
		res, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow, Lookback: 48 * time.Hour})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)
		require.Equal(t, tooOld, res.Events[0].EventID)
	})

	t.Run("RosterIsCurrentUndeletedMembersOfTheGeneration", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		then := testNow.Add(-48 * time.Hour)
		club, err := seed.CreateClub(ctx, db.Pool, "Tennis", 3, then)
		require.NoError(t, err)
		other, err := seed.CreateClub(ctx, db.Pool, "Other", 1, then)
		require.NoError(t, err)
		event := dueEvent(t, db.Pool, club.GenerationID, time.Minute)

		// m[1] is soft-deleted, with an UNCHECKED row that stays.
		_, err = db.Pool.Exec(ctx, `UPDATE club_member SET is_deleted = true WHERE id = $1`, club.MemberIDs[1])
		require.NoError(t, err)
		_, err = seed.AddAttendance(ctx, db.Pool, event, club.MappingIDs[1], unchecked, then)
		require.NoError(t, err)
		// m[2]'s mapping is no longer current (they moved on), with an
		// UNCHECKED row that stays.
		_, err = db.Pool.Exec(ctx, `UPDATE generation_mapping SET is_current = false WHERE id = $1`, club.MappingIDs[2])
		require.NoError(t, err)
		_, err = seed.AddAttendance(ctx, db.Pool, event, club.MappingIDs[2], unchecked, then)
		require.NoError(t, err)
		// A non-current mapping of a member of this generation gets nothing.
		oldMapping, err := seed.AddMapping(ctx, db.Pool, club.GenerationID, other.MemberIDs[0], false, then)
		require.NoError(t, err)

		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, []int64{club.MappingIDs[0]}, res.Events[0].AbsentMappingIDs)
		require.Equal(t, []int{absent}, statusesOf(t, db.Pool, event, club.MappingIDs[0]))
		require.Equal(t, []int{unchecked}, statusesOf(t, db.Pool, event, club.MappingIDs[1]))
		require.Equal(t, []int{unchecked}, statusesOf(t, db.Pool, event, club.MappingIDs[2]))
		require.Empty(t, statusesOf(t, db.Pool, event, oldMapping))
		require.Empty(t, statusesOf(t, db.Pool, event, other.MappingIDs[0]))
	})

	t.Run("SecondSweepChangesNothing", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 4, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		event := dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		_, err = seed.AddAttendance(ctx, db.Pool, event, club.MappingIDs[0], unchecked, testNow.Add(-time.Hour))
		require.NoError(t, err)

		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)
		snapshot := func() string {
			var s string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(a::text, ';' ORDER BY id), '') FROM attendances a`).Scan(&s))
			var w string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT string_agg(s::text, ';') FROM wasso_settlement s`).Scan(&w))
			return s + "|" + w
		}
		before := snapshot()
		for _, now := range []time.Time{testNow, testNow.Add(time.Minute), testNow.Add(time.Hour)} {
			res, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: now})
			require.NoError(t, err)
			require.Equal(t, attendance.SettleResult{}, *res)
		}
		require.Equal(t, before, snapshot())
	})

	t.Run("ResettlesWhenTheDeadlineMoves", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		then := testNow.Add(-48 * time.Hour)
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, then)
		require.NoError(t, err)
		event := dueEvent(t, db.Pool, club.GenerationID, time.Minute)

		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, 2, res.CreatedRows)

		// The organiser moves the event one hour later. Meanwhile a member
		// joins and one of the absent members is set back to UNCHECKED.
		_, err = db.Pool.Exec(ctx, `UPDATE events SET start_datetime = start_datetime + interval '1 hour' WHERE id = $1`, event)
		require.NoError(t, err)
		newMember, err := seed.CreateClub(ctx, db.Pool, "Tmp", 1, then)
		require.NoError(t, err)
		joined, err := seed.AddMapping(ctx, db.Pool, club.GenerationID, newMember.MemberIDs[0], true, testNow)
		require.NoError(t, err)
		_, err = seed.AddAttendance(ctx, db.Pool, event, club.MappingIDs[1], unchecked, testNow.Add(time.Minute))
		require.NoError(t, err)

		// Not due before the new deadline.
		res, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow.Add(58 * time.Minute)})
		require.NoError(t, err)
		require.Zero(t, res.ProcessedEvents)

		at := testNow.Add(59 * time.Minute)
		res, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: at})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)
		require.Equal(t, 1, res.UpdatedRows)
		require.Equal(t, 1, res.CreatedRows)
		require.Equal(t, []int64{club.MappingIDs[1], joined}, res.Events[0].AbsentMappingIDs)
		require.Equal(t, []int{absent}, statusesOf(t, db.Pool, event, club.MappingIDs[0]))
		require.Equal(t, []int{absent, absent}, statusesOf(t, db.Pool, event, club.MappingIDs[1]))
		require.Equal(t, 2, count(t, db.Pool, `SELECT settle_count FROM wasso_settlement WHERE event_id = $1`, event))

		// Moved earlier, to a deadline already past: settled at once.
		_, err = db.Pool.Exec(ctx, `UPDATE events SET start_datetime = start_datetime - interval '2 hours' WHERE id = $1`, event)
		require.NoError(t, err)
		res, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: at.Add(time.Second)})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)
		require.Zero(t, res.UpdatedRows+res.CreatedRows)
		require.Equal(t, 4, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, event))
	})

	t.Run("EarlyMorningSeoulEventsAreNotMissed", func(t *testing.T) {
		t.Parallel()

		// The old task looked for date = today in UTC, so an event at 02:00
		// in Seoul (17:00 UTC the day before) was never found on its day.
		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Night owls", 2, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		start := time.Date(2026, 3, 3, 2, 0, 0, 0, seed.Seoul)
		event, err := seed.CreateEvent(ctx, db.Pool, seed.Event{GenerationID: club.GenerationID, Title: "Dawn run", Start: start, FailMinutes: 15}, testNow)
		require.NoError(t, err)
		var date time.Time
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT date FROM events WHERE id = $1`, event).Scan(&date))
		require.Equal(t, "2026-03-03", date.Format(time.DateOnly))

		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: start.Add(15 * time.Minute).UTC()})
		require.NoError(t, err)
		require.Equal(t, 1, res.ProcessedEvents)
		require.Equal(t, 2, res.CreatedRows)
	})

	t.Run("InCallersTransaction", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		dueEvent(t, db.Pool, club.GenerationID, time.Minute)

		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // rolled back below; this covers a failed assertion
		res, err := attendance.SettleDueTx(ctx, tx, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, 2, res.CreatedRows)
		require.NoError(t, tx.Rollback(ctx))
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances`), "rolled back with the caller's transaction")
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement`))

		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			res, err = attendance.SettleDueTx(ctx, tx, attendance.SettleParams{Now: testNow})
			return err
		}))
		require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM attendances`))
	})

	t.Run("DueEventsChangesNothing", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		event := dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		due, err := attendance.DueEvents(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Len(t, due, 1)
		require.Equal(t, event, due[0].EventID)
		require.False(t, due[0].Resettle)
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances`))
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement`))
	})

	t.Run("DueBacklog", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		backlog, err := attendance.DueBacklog(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, attendance.Backlog{}, backlog, "nothing due")

		club, err := seed.CreateClub(ctx, db.Pool, "Go", 2, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		dueEvent(t, db.Pool, club.GenerationID, 3*time.Minute)
		dueEvent(t, db.Pool, club.GenerationID, -time.Minute) // not due yet
		dueEvent(t, db.Pool, club.GenerationID, 25*time.Hour) // past the lookback
		backlog, err = attendance.DueBacklog(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, attendance.Backlog{Events: 2, Oldest: 3 * time.Minute}, backlog)
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement`), "changes nothing")

		_, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		backlog, err = attendance.DueBacklog(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, attendance.Backlog{}, backlog, "all settled")
	})

	t.Run("InvalidParams", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		_, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Lookback: -time.Hour})
		require.ErrorIs(t, err, attendance.ErrInvalidParams)
		require.ErrorContains(t, err, "lookback -1h0m0s must not be negative")
		_, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Limit: -1})
		require.ErrorIs(t, err, attendance.ErrInvalidParams)
	})

	t.Run("MissingWassoTables", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		_, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{})
		require.ErrorIs(t, err, attendance.ErrSchemaMissing)
		var missing *attendance.SchemaMissingError
		require.ErrorAs(t, err, &missing)
		require.Equal(t, "relation", missing.Kind)
		require.Equal(t, "events", missing.Name)
		require.ErrorContains(t, err, `scheduler schema missing: relation "events" does not exist`)
		require.NotContains(t, err.Error(), "migrate", "the library names no command")
	})
}

// TestSettleDueConcurrent runs 20 sweeps at once over the same due events:
// every event is settled once and no member gets two rows.
func TestSettleDueConcurrent(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{MaxConns: 25})
	then := testNow.Add(-48 * time.Hour)
	var events []int64
	var roster int
	for c := range 3 {
		club, err := seed.CreateClub(ctx, db.Pool, "Club", 20+c, then)
		require.NoError(t, err)
		roster += (20 + c) * 10
		for range 10 {
			events = append(events, dueEvent(t, db.Pool, club.GenerationID, time.Minute))
		}
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		total    attendance.SettleResult
		errs     []error
		start    = make(chan struct{})
		sweeps   = 20
		perEvent = map[int64]int{}
	)
	for i := range sweeps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Small batches so that sweeps interleave.
			res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow, Limit: 1 + i%4})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			total.ProcessedEvents += res.ProcessedEvents
			total.CreatedRows += res.CreatedRows
			for _, ev := range res.Events {
				perEvent[ev.EventID]++
			}
		}()
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Equal(t, len(events), total.ProcessedEvents)
	require.Len(t, perEvent, len(events))
	for ev, n := range perEvent {
		require.Equal(t, 1, n, "event %d settled %d times", ev, n)
	}
	require.Equal(t, roster, total.CreatedRows)
	require.Equal(t, roster, count(t, db.Pool, `SELECT count(*) FROM attendances`))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM (SELECT 1 FROM attendances GROUP BY event_id, generation_mapping_id HAVING count(*) > 1) d`))
}

// TestSettleDueCancelled cancels sweeps part-way: every event is either
// fully settled (recorded, and every roster member ABSENT) or untouched.
func TestSettleDueCancelled(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	check := func(t *testing.T, db *wassotest.DB) (settled, untouched int) {
		t.Helper()
		rows, err := db.Pool.Query(ctx, `
			SELECT e.id, s.event_id IS NOT NULL,
			       (SELECT count(*) FROM attendances a WHERE a.event_id = e.id AND a.status = 3),
			       (SELECT count(*) FROM generation_mapping gm WHERE gm.generation_id = e.generation_id AND gm.is_current)
			FROM events e LEFT JOIN wasso_settlement s ON s.event_id = e.id`)
		require.NoError(t, err)
		var id int64
		var recorded bool
		var absentRows, roster int
		_, err = pgx.ForEachRow(rows, []any{&id, &recorded, &absentRows, &roster}, func() error {
			switch {
			case recorded && absentRows == roster:
				settled++
			case !recorded && absentRows == 0:
				untouched++
			default:
				t.Errorf("event %d half settled: recorded %v, %d of %d members absent", id, recorded, absentRows, roster)
			}
			return nil
		})
		require.NoError(t, err)
		return settled, untouched
	}

	t.Run("BetweenBatches", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 30, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		for range 10 {
			dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		}
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		batches := 0
		res, err := attendance.SettleDueFunc(cctx, db.Pool, attendance.SettleParams{Now: testNow, Limit: 2}, func(ctx context.Context, tx pgx.Tx, batch *attendance.SettleResult) error {
			batches++
			if batches == 3 {
				// Cancelled after the batch's statements ran, before commit.
				cancel()
			}
			return ctx.Err()
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 4, res.ProcessedEvents, "two batches committed")
		settled, untouched := check(t, db)
		require.Equal(t, 4, settled)
		require.Equal(t, 6, untouched)
	})

	t.Run("MidStatement", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Big", 2000, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		for range 20 {
			dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		}
		// Cancel at growing delays until a sweep completes; whatever point
		// each cancellation hits, no event is half settled.
		for delay := time.Millisecond; ; delay *= 2 {
			cctx, cancel := context.WithTimeout(ctx, delay)
			_, err := attendance.SettleDue(cctx, db.Pool, attendance.SettleParams{Now: testNow, Limit: 5})
			cancel()
			check(t, db)
			if delay > time.Minute {
				t.Fatalf("no sweep completed, even given a minute: %v", err)
			}
			if err == nil {
				break
			}
		}
		settled, untouched := check(t, db)
		require.Equal(t, 20, settled)
		require.Zero(t, untouched)
	})
}

// TestSettleDueAfterLosingEveryClaim has a sweep whose whole first batch is
// taken by a transaction committing while it waits: it must go on to the
// events still due rather than stop at an empty claim.
func TestSettleDueAfterLosingEveryClaim(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club := goClub(t, db, 2)
	events := dueEvents(t, db, club.GenerationID, 4)

	first, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer first.Rollback(ctx) //nolint:errcheck // committed below
	res, err := attendance.SettleDueTx(ctx, first, attendance.SettleParams{Now: testNow, EventIDs: events[:2]})
	require.NoError(t, err)
	require.Equal(t, 2, res.ProcessedEvents)

	// A second sweep, on connections named after the test's schema so
	// that it can be seen waiting.
	cfg, err := pgxpool.ParseConfig(db.URL + "&application_name=" + db.Schema)
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	done := make(chan *attendance.SettleResult, 1)
	go func() {
		res, err := attendance.SettleDue(ctx, pool, attendance.SettleParams{Now: testNow, Limit: 2})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	require.Eventually(t, func() bool {
		n, err := queryCount(db.Pool, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, db.Schema)
		return err == nil && n == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, first.Commit(ctx))

	second := <-done
	require.Equal(t, 2, second.ProcessedEvents)
	require.Equal(t, events[2], second.Events[0].EventID)
	require.Equal(t, events[3], second.Events[1].EventID)
}
