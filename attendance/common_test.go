package attendance_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

func TestMain(m *testing.M) { wassotest.Main(m) }

// testNow is the test clock: 2026-03-02 09:00 in Seoul. Tests pass it (or
// instants derived from it) as SettleParams.Now instead of sleeping.
var testNow = time.Date(2026, 3, 2, 9, 0, 0, 0, seed.Seoul)

type row struct {
	ID         int64
	Status     int
	IsModified bool
	ModifiedAt time.Time
	CreatedAt  time.Time
	Timestamp  time.Time
	CreatedBy  *int64
}

// rowsOf returns the attendance rows of one member for one event, oldest
// first.
func rowsOf(t *testing.T, db seed.DB, eventID, mappingID int64) []row {
	t.Helper()
	rows, err := db.Query(context.Background(), `
		SELECT id, status, is_modified, modified_at, created_at, "timestamp", created_by_id
		FROM attendances WHERE event_id = $1 AND generation_mapping_id = $2
		ORDER BY created_at, id`, eventID, mappingID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	require.NoError(t, err)
	return out
}

// statusesOf returns the statuses of a member's rows for an event, oldest
// first.
func statusesOf(t *testing.T, db seed.DB, eventID, mappingID int64) []int {
	t.Helper()
	var out []int
	for _, r := range rowsOf(t, db, eventID, mappingID) {
		out = append(out, r.Status)
	}
	return out
}

// count runs a query returning one integer.
func count(t *testing.T, db seed.DB, sql string, args ...any) int {
	t.Helper()
	n, err := queryCount(db, sql, args...)
	require.NoError(t, err)
	return n
}

// queryCount is count for require.Eventually conditions: it returns the
// error instead of failing the test, since a require there would fail on
// testify's goroutine and show as a timeout.
func queryCount(db seed.DB, sql string, args ...any) (int, error) {
	var n int
	err := db.QueryRow(context.Background(), sql, args...).Scan(&n)
	return n, err
}

// workJob works one job of args with worker through rivertest.Worker: the
// job is inserted and worked as River would, in a transaction rolled back
// before workJob returns, so that no client runs and nothing of the job
// stays; what the worker commits through its own pool does. Tests of a
// worker's Work use it; tests of scheduling, leadership or concurrency run
// a real client (startRunner).
func workJob[T river.JobArgs](t *testing.T, db *wassotest.DB, worker river.Worker[T], args T, opts *river.InsertOpts) (*rivertest.WorkResult, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // the job's row is not kept
	tw := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Schema: db.Schema}, worker)
	return tw.Work(ctx, t, tx, args, opts)
}

// goClub creates the club "Go" with members current members, two days
// before testNow.
func goClub(t *testing.T, db *wassotest.DB, members int) *seed.Club {
	t.Helper()
	club, err := seed.CreateClub(context.Background(), db.Pool, "Go", members, testNow.Add(-48*time.Hour))
	require.NoError(t, err)
	return club
}

// dueEvents creates n events of a generation whose deadlines passed a
// minute before testNow.
func dueEvents(t *testing.T, db *wassotest.DB, generationID int64, n int) []int64 {
	t.Helper()
	events := make([]int64, 0, n)
	for range n {
		events = append(events, dueEvent(t, db.Pool, generationID, time.Minute))
	}
	return events
}

// dueEvent creates an event whose deadline (start + 30 min) is
// deadlineAgo before testNow.
func dueEvent(t *testing.T, db seed.DB, generationID int64, deadlineAgo time.Duration) int64 {
	t.Helper()
	id, err := seed.CreateEvent(context.Background(), db, seed.Event{
		GenerationID: generationID,
		Title:        "Weekly meeting",
		Start:        testNow.Add(-deadlineAgo - 30*time.Minute),
		StartMinutes: -10,
		LateMinutes:  10,
		FailMinutes:  30,
	}, testNow.Add(-24*time.Hour))
	require.NoError(t, err)
	return id
}
