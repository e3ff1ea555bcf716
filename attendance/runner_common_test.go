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
	config.NoPeriodic = true
	if config.Logger == nil {
		config.Logger = testLogger(t)
	}
	if config.RetryPolicy == nil {
		config.RetryPolicy = fastRetry{}
	}
	client, err := wassoriver.NewClient(db.Pool, config)
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	return client
}

// djangoEvent inserts an event with plain SQL, as the Django backend does,
// whose deadline (start + 30 minutes) is deadline.
func djangoEvent(t *testing.T, db seed.DB, generationID int64, deadline time.Time) int64 {
	t.Helper()
	id, err := seed.CreateEvent(context.Background(), db, seed.Event{
		GenerationID: generationID,
		Title:        "Weekly meeting",
		Start:        deadline.Add(-30 * time.Minute),
		StartMinutes: -10,
		LateMinutes:  10,
		FailMinutes:  30,
	}, time.Now())
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
	var s settlementRow
	err := db.QueryRow(context.Background(), `SELECT deadline, settled_at, settle_count FROM wasso_settlement WHERE event_id = $1`, eventID).
		Scan(&s.Deadline, &s.SettledAt, &s.SettleCount)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false
	}
	require.NoError(t, err)
	return s, true
}

// requireSettledFor waits until the event is settled for deadline and
// returns the settlement.
func requireSettledFor(t *testing.T, db seed.DB, eventID int64, deadline time.Time) settlementRow {
	t.Helper()
	var s settlementRow
	require.Eventually(t, func() bool {
		var ok bool
		s, ok = settlementOf(t, db, eventID)
		return ok && s.Deadline.Equal(deadline)
	}, eventuallyWait, 20*time.Millisecond, "event %d not settled for %s", eventID, deadline)
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
	rows, err := db.Query(context.Background(), `
		SELECT id, state::text, args, scheduled_at, metadata -> 'output'
		FROM river_job WHERE kind = 'attendance.settle_event' AND (args ->> 'event_id')::bigint = $1
		ORDER BY id`, eventID)
	require.NoError(t, err)
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
	require.NoError(t, err)
	return out
}
