package attendance_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// raceEvent creates a club of members members and an event whose deadline
// passed a moment ago on the real clock, since the wait for writers in
// flight applies to deadlines that have just passed.
func raceEvent(t *testing.T, db *wassotest.DB, members int) (*seed.Club, int64, time.Time) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	club, err := seed.CreateClub(ctx, db.Pool, "Race club", members, now.Add(-48*time.Hour))
	require.NoError(t, err)
	deadline := now.Add(-500 * time.Millisecond).Truncate(time.Microsecond)
	event, err := seed.CreateEvent(ctx, db.Pool, seed.Event{
		GenerationID: club.GenerationID,
		Title:        "Evening practice",
		Start:        deadline.Add(-30 * time.Minute),
		LateMinutes:  10,
		FailMinutes:  30,
	}, now.Add(-time.Hour))
	require.NoError(t, err)
	return club, event, deadline
}

// settlementConn opens a connection of its own for a settlement, so that
// the test can watch what that settlement's backend waits for.
func settlementConn(t *testing.T, db *wassotest.DB) (*pgx.Conn, uint32) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn, conn.PgConn().PID()
}

// backendAt returns whether the backend pid waits on what, as
// pg_stat_activity shows it ("Lock" for a row lock) or, for "marker",
// whether it holds the settlement's advisory lock (it is waiting for
// writers in flight).
func backendAt(t *testing.T, db *wassotest.DB, pid uint32, what string) bool {
	t.Helper()
	var n int
	var err error
	switch what {
	case "marker":
		err = db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND objsubid = 2`, pid).Scan(&n)
	default:
		err = db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = $2`, pid, what).Scan(&n)
	}
	return err == nil && n > 0
}

// TestSettleWaitsForWritersInFlight holds a check-in (a new LATE row whose
// created_at is before the deadline) and an organiser's edit (UNCHECKED to
// PRESENT in place) open across the deadline, as the Django backend does,
// and commits them only once the settlement has started: the settlement
// waits for both and settles on top of them.
func TestSettleWaitsForWritersInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club, event, deadline := raceEvent(t, db, 4)
	m := club.MappingIDs
	edited, err := seed.AddAttendance(ctx, db.Pool, event, m[0], attendance.StatusUnchecked, deadline.Add(-20*time.Minute))
	require.NoError(t, err)
	_, err = seed.AddAttendance(ctx, db.Pool, event, m[2], attendance.StatusUnchecked, deadline.Add(-20*time.Minute))
	require.NoError(t, err)

	edit, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = edit.Rollback(ctx) }()
	_, err = edit.Exec(ctx, `UPDATE attendances SET status = 1, is_modified = true, modified_at = $2 WHERE id = $1`, edited, deadline.Add(-time.Second))
	require.NoError(t, err)
	checkIn, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = checkIn.Rollback(ctx) }()
	_, err = seed.AddAttendance(ctx, checkIn, event, m[1], attendance.StatusLate, deadline.Add(-time.Second))
	require.NoError(t, err)

	conn, pid := settlementConn(t, db)
	type outcome struct {
		res *attendance.SettleResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := attendance.SettleDue(ctx, conn, attendance.SettleParams{WriterWait: 20 * time.Second})
		done <- outcome{res, err}
	}()
	wassotest.WaitFor(t, 30*time.Second, "the settlement to wait for the writers", func() bool { return backendAt(t, db, pid, "marker") })
	require.NoError(t, edit.Commit(ctx))
	require.NoError(t, checkIn.Commit(ctx))
	out := <-done
	require.NoError(t, out.err)
	require.Equal(t, 1, out.res.ProcessedEvents)
	require.Equal(t, 2, out.res.WaitedWriters)
	require.Zero(t, out.res.WriterWaitTimeouts)

	require.Equal(t, []int{attendance.StatusPresent}, statusesOf(t, db.Pool, event, m[0]), "the organiser's edit is kept")
	require.Equal(t, []int{attendance.StatusLate}, statusesOf(t, db.Pool, event, m[1]), "the check-in stays the member's only row")
	require.Equal(t, []int{attendance.StatusAbsent}, statusesOf(t, db.Pool, event, m[2]))
	require.Equal(t, []int{attendance.StatusAbsent}, statusesOf(t, db.Pool, event, m[3]))
	require.Equal(t, 1, out.res.UpdatedRows)
	require.Equal(t, 1, out.res.CreatedRows)
}

// TestSettleKeepsEditCommittedDuringUpdate lets the settlement read the
// rows without waiting (WriterWait < 0) while an organiser's UPDATE holds
// a row lock: the settlement's UPDATE waits for that lock and, once the
// edit commits, checks the row's current status and leaves it.
func TestSettleKeepsEditCommittedDuringUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club, event, deadline := raceEvent(t, db, 2)
	m := club.MappingIDs
	edited, err := seed.AddAttendance(ctx, db.Pool, event, m[0], attendance.StatusUnchecked, deadline.Add(-20*time.Minute))
	require.NoError(t, err)
	_, err = seed.AddAttendance(ctx, db.Pool, event, m[1], attendance.StatusUnchecked, deadline.Add(-20*time.Minute))
	require.NoError(t, err)

	edit, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = edit.Rollback(ctx) }()
	_, err = edit.Exec(ctx, `UPDATE attendances SET status = 1, is_modified = true, modified_at = now() WHERE id = $1`, edited)
	require.NoError(t, err)

	conn, pid := settlementConn(t, db)
	done := make(chan error, 1)
	var res *attendance.SettleResult
	go func() {
		var err error
		res, err = attendance.SettleDue(ctx, conn, attendance.SettleParams{WriterWait: -1})
		done <- err
	}()
	wassotest.WaitFor(t, 30*time.Second, "the settlement's UPDATE to wait for the row lock", func() bool { return backendAt(t, db, pid, "Lock") })
	require.NoError(t, edit.Commit(ctx))
	require.NoError(t, <-done)
	require.Equal(t, 1, res.UpdatedRows, "only the row nobody edited is updated")
	require.Equal(t, []int{attendance.StatusPresent}, statusesOf(t, db.Pool, event, m[0]))
	require.Equal(t, []int{attendance.StatusAbsent}, statusesOf(t, db.Pool, event, m[1]))
}

// TestReconcileRepairsLateWriters covers the writers a settlement cannot
// wait for: one open longer than WriterWait, and one that inserts with a
// created_at taken before the deadline only after the settlement
// committed. Reconcile removes the settlement's row from above each of
// them, marks an UNCHECKED row written that way ABSENT, leaves alone a
// settlement row an organiser has edited, and changes nothing when run
// again.
func TestReconcileRepairsLateWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club, event, deadline := raceEvent(t, db, 6)
	m := club.MappingIDs

	// m[0]: a check-in held open past the settlement's wait.
	long, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = long.Rollback(ctx) }()
	_, err = seed.AddAttendance(ctx, long, event, m[0], attendance.StatusLate, deadline.Add(-2*time.Second))
	require.NoError(t, err)

	res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{WriterWait: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 1, res.WriterWaitTimeouts)
	require.Equal(t, 6, res.CreatedRows, "the settlement saw no row of anybody")
	require.NoError(t, long.Commit(ctx))

	// m[1]: a check-in timestamped before the deadline, inserted only now.
	_, err = seed.AddAttendance(ctx, db.Pool, event, m[1], attendance.StatusPresent, deadline.Add(-5*time.Minute))
	require.NoError(t, err)
	// m[2]: an UNCHECKED row written late: the member is absent after all.
	_, err = seed.AddAttendance(ctx, db.Pool, event, m[2], attendance.StatusUnchecked, deadline.Add(-30*time.Minute))
	require.NoError(t, err)
	// m[3]: a late row, but an organiser has since set the settlement's
	// row to PRESENT: the organiser's word stands.
	_, err = seed.AddAttendance(ctx, db.Pool, event, m[3], attendance.StatusLate, deadline.Add(-time.Second))
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE attendances SET status = 1 WHERE event_id = $1 AND generation_mapping_id = $2 AND status = 3`, event, m[3])
	require.NoError(t, err)
	// m[4]: a row appended after the settlement's, as the backend records
	// a later change: history, nothing buried.
	_, err = seed.AddAttendance(ctx, db.Pool, event, m[4], attendance.StatusPresent, time.Now().Add(time.Minute))
	require.NoError(t, err)

	rec, err := attendance.Reconcile(ctx, db.Pool, attendance.SettleParams{})
	require.NoError(t, err)
	require.Equal(t, 1, rec.CheckedEvents)
	require.Equal(t, 3, rec.RepairedRows)
	require.Equal(t, []attendance.Repair{
		{EventID: event, MappingID: m[0]},
		{EventID: event, MappingID: m[1]},
		{EventID: event, MappingID: m[2], StillAbsent: true},
	}, rec.Repairs)

	require.Equal(t, []int{attendance.StatusLate}, statusesOf(t, db.Pool, event, m[0]))
	require.Equal(t, []int{attendance.StatusPresent}, statusesOf(t, db.Pool, event, m[1]))
	require.Equal(t, []int{attendance.StatusAbsent}, statusesOf(t, db.Pool, event, m[2]))
	require.Equal(t, []int{attendance.StatusLate, attendance.StatusPresent}, statusesOf(t, db.Pool, event, m[3]))
	require.Equal(t, []int{attendance.StatusAbsent, attendance.StatusPresent}, statusesOf(t, db.Pool, event, m[4]))
	require.Equal(t, []int{attendance.StatusAbsent}, statusesOf(t, db.Pool, event, m[5]))

	again, err := attendance.Reconcile(ctx, db.Pool, attendance.SettleParams{})
	require.NoError(t, err)
	require.Zero(t, again.RepairedRows)

	// Outside its window Reconcile looks at nothing.
	later, err := attendance.Reconcile(ctx, db.Pool, attendance.SettleParams{Now: time.Now().Add(25 * time.Hour)})
	require.NoError(t, err)
	require.Zero(t, later.CheckedEvents)
}

// TestPrune deletes the bookkeeping of deleted events and of deadlines
// older than the lookback, and keeps the rest.
func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club, err := seed.CreateClub(ctx, db.Pool, "Chess club", 2, testNow.Add(-72*time.Hour))
	require.NoError(t, err)
	recent := dueEvent(t, db.Pool, club.GenerationID, time.Hour)
	old := dueEvent(t, db.Pool, club.GenerationID, 20*time.Hour)
	deleted := dueEvent(t, db.Pool, club.GenerationID, 2*time.Hour)
	_, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO wasso_deadline_plan (event_id, deadline, planned_at, source)
		SELECT event_id, deadline, settled_at, 'api' FROM wasso_settlement`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `DELETE FROM attendances WHERE event_id = $1`, deleted)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `DELETE FROM events WHERE id = $1`, deleted)
	require.NoError(t, err)

	// Six hours on, with a lookback of the default 24 hours, the event
	// settled 20 hours before testNow is out of the window.
	res, err := attendance.Prune(ctx, db.Pool, attendance.SettleParams{Now: testNow.Add(6 * time.Hour)})
	require.NoError(t, err)
	require.Equal(t, &attendance.PruneResult{Settlements: 2, Plans: 2}, res)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE event_id = $1`, recent))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_deadline_plan WHERE event_id = $1`, recent))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE event_id IN ($1, $2)`, old, deleted))

	// Pruning changes no due event: the pruned one is outside the window.
	due, err := attendance.DueEvents(ctx, db.Pool, attendance.SettleParams{Now: testNow.Add(6 * time.Hour)})
	require.NoError(t, err)
	require.Empty(t, due)
}
