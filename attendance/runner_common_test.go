package attendance_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// eventuallyWait is how long tests that run a real client wait for a
// settlement or a delivery. Deadlines in these tests are a second or two
// away; the wait is long only so that a loaded CI machine does not fail
// them. Nothing asserts how fast anything happened.
const eventuallyWait = 20 * time.Second

// testLogger logs warnings and errors of the client to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// fastRetry retries failed jobs after 200 ms, so that tests of a notifier
// that is down do not wait for River's attempt^4 seconds.
type fastRetry struct{}

func (fastRetry) NextRetry(*rivertype.JobRow) time.Time {
	return time.Now().Add(200 * time.Millisecond)
}

// startRunner starts a River client on db as a wasso-runner would, without
// the periodic sweep (so that only the per-event jobs settle events), and
// stops it when the test ends.
func startRunner(t *testing.T, db *wassotest.DB, config wassoriver.Config) *wassoriver.Client {
	t.Helper()
	config.Schema = db.Schema
	config.NoSchedules = true
	if config.Logger == nil {
		config.Logger = testLogger(t)
	}
	if config.RetryPolicy == nil {
		config.RetryPolicy = fastRetry{}
	}
	client, err := wassoriver.NewClient(db.Pool, config)
	require.NoError(t, err)
	wassotest.StartClient(t, client)
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

// settlementRow is an event's wasso_settlement row.
type settlementRow struct {
	Deadline    time.Time
	SettledAt   time.Time
	SettleCount int
}

// settlementOf returns the event's settlement, or false when there is none.
func settlementOf(t *testing.T, db seed.DB, eventID int64) (settlementRow, bool) {
	t.Helper()
	s, ok, err := querySettlement(db, eventID)
	require.NoError(t, err)
	return s, ok
}

// querySettlement is settlementOf for Eventually conditions: it returns
// the error instead of failing the test.
func querySettlement(db seed.DB, eventID int64) (settlementRow, bool, error) {
	var s settlementRow
	err := db.QueryRow(context.Background(), `SELECT deadline, settled_at, settle_count FROM wasso_settlement WHERE event_id = $1`, eventID).
		Scan(&s.Deadline, &s.SettledAt, &s.SettleCount)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	return s, err == nil, err
}

// requireSettledFor waits until the event is settled for deadline and
// returns the settlement. On a timeout it reports what the last look
// found: no settlement, one for another deadline, or the query's error.
func requireSettledFor(t *testing.T, db seed.DB, eventID int64, deadline time.Time) settlementRow {
	t.Helper()
	var s settlementRow
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, ok, err := querySettlement(db, eventID)
		require.NoError(c, err)
		require.True(c, ok, "event %d not settled", eventID)
		require.True(c, got.Deadline.Equal(deadline), "event %d settled for %s, want %s", eventID, got.Deadline, deadline)
		s = got
	}, eventuallyWait, 20*time.Millisecond)
	require.False(t, s.SettledAt.Before(deadline), "settled at %s, before its deadline %s", s.SettledAt, deadline)
	return s
}

// settleJob is a settle_event job as River stored it.
type settleJob struct {
	ID          int64
	State       string
	Args        []byte
	ScheduledAt time.Time
	Output      *settleOutput
}

type settleOutput struct {
	Settled bool `json:"settled"`
}

// settleJobsOf returns the event's settle_event jobs, oldest first.
func settleJobsOf(t *testing.T, db seed.DB, eventID int64) []settleJob {
	t.Helper()
	jobs, err := querySettleJobs(db, eventID)
	require.NoError(t, err)
	return jobs
}

// querySettleJobs is settleJobsOf for Eventually conditions: it returns
// the error instead of failing the test.
func querySettleJobs(db seed.DB, eventID int64) ([]settleJob, error) {
	rows, err := db.Query(context.Background(), `
		SELECT id, state::text, args, scheduled_at, metadata -> 'output'
		FROM river_job WHERE kind = 'attendance.settle_event' AND (args ->> 'event_id')::bigint = $1
		ORDER BY id`, eventID)
	if err != nil {
		return nil, err
	}
	var out []settleJob
	var j settleJob
	var output []byte
	_, err = pgx.ForEachRow(rows, []any{&j.ID, &j.State, &j.Args, &j.ScheduledAt, &output}, func() error {
		j.Output = nil
		if output != nil {
			j.Output = &settleOutput{}
			if err := json.Unmarshal(output, j.Output); err != nil {
				return err
			}
		}
		out = append(out, j)
		return nil
	})
	return out, err
}
