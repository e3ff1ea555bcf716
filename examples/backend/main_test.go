package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

func TestMain(m *testing.M) { wassotest.Main(m) }

// startBackend runs the program with args and returns its base URL; it is
// stopped when the test ends.
func startBackend(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	logs := &wassotest.SyncBuffer{}
	go func() {
		errc <- run(ctx, append(args, "-addr", "127.0.0.1:0"), logs, func(addr string) { addrc <- addr })
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-errc)
	})
	select {
	case addr := <-addrc:
		return "http://" + addr
	case err := <-errc:
		t.Fatalf("backend did not start: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("backend did not start")
	}
	return ""
}

// call sends body as JSON and returns the status and the JSON answer.
func call(t *testing.T, method, url string, body any) (int, map[string]any) {
	t.Helper()
	status, out, err := tryCall(method, url, body)
	require.NoError(t, err)
	return status, out
}

// tryCall is call for Eventually conditions: it returns the error instead
// of failing the test.
func tryCall(method, url string, body any) (int, map[string]any, error) {
	var r io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, r)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, nil, fmt.Errorf("%s %s: answer status %d: %w", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, out, nil
}

// waitSettled waits until the API reports the event settled and returns
// the settlement. On a timeout it reports the last answer.
func waitSettled(t *testing.T, base string, id int64) map[string]any {
	t.Helper()
	var out map[string]any
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		status, body, err := tryCall(http.MethodGet, fmt.Sprintf("%s/events/%d/settlement", base, id), nil)
		require.NoError(c, err)
		require.Equal(c, http.StatusOK, status, "settlement of event %d: %v", id, body)
		out = body
	}, 30*time.Second, 20*time.Millisecond)
	return out
}

// TestBackend runs the backend as a program against a migrated schema,
// with a runner (a wassoriver client, as wasso-runner runs) working the
// jobs beside it: an event created through the API is settled at its
// deadline, a move is honoured, and a request whose transaction fails
// schedules nothing.
func TestBackend(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	runner, err := wassoriver.NewClient(db.Pool, wassoriver.Config{Schema: db.Schema, NoSchedules: true})
	require.NoError(t, err)
	wassotest.StartClient(t, runner)
	club, err := seed.CreateClub(ctx, db.Pool, "Chess club", 3, time.Now())
	require.NoError(t, err)
	base := startBackend(t, "-database-url", wassotest.ServerURL(t), "-schema", db.Schema)

	t.Run("CreateThenSettled", func(t *testing.T) {
		t.Parallel()

		deadline := time.Now().Add(1500 * time.Millisecond).Truncate(time.Microsecond)
		status, created := call(t, http.MethodPost, base+"/events", map[string]any{
			"generation_id": club.GenerationID, "title": "Weekly meeting",
			"start": deadline.Add(-30 * time.Minute), "fail_minutes": 30, "location": "Club room",
		})
		require.Equal(t, http.StatusCreated, status, created)
		require.NotZero(t, created["job_id"])
		id := int64(created["id"].(float64))

		settled := waitSettled(t, base, id)
		require.EqualValues(t, 3, settled["created_rows"])
		settledAt, err := time.Parse(time.RFC3339Nano, settled["settled_at"].(string))
		require.NoError(t, err)
		require.False(t, settledAt.Before(deadline))
	})

	t.Run("MovedLater", func(t *testing.T) {
		t.Parallel()

		first := time.Now().Add(time.Hour)
		status, created := call(t, http.MethodPost, base+"/events", map[string]any{
			"generation_id": club.GenerationID, "title": "Study session", "start": first.Add(-30 * time.Minute), "fail_minutes": 30,
		})
		require.Equal(t, http.StatusCreated, status, created)
		id := int64(created["id"].(float64))

		// Check-in now closes 2 minutes after start, which was 29 minutes ago
		// plus a second and a half: the new deadline is in 1.5 s.
		deadline := time.Now().Add(1500 * time.Millisecond).Truncate(time.Microsecond)
		status, moved := call(t, http.MethodPatch, fmt.Sprintf("%s/events/%d", base, id), map[string]any{"start": deadline.Add(-2 * time.Minute), "fail_minutes": 2})
		require.Equal(t, http.StatusOK, status, moved)
		require.NotEqual(t, created["job_id"], moved["job_id"])

		settled := waitSettled(t, base, id)
		gotDeadline, err := time.Parse(time.RFC3339Nano, settled["deadline"].(string))
		require.NoError(t, err)
		require.True(t, gotDeadline.Equal(deadline), "settled for the new deadline %s, got %s", deadline, gotDeadline)
	})

	t.Run("FailedTransactionSchedulesNothing", func(t *testing.T) {
		t.Parallel()

		status, out := call(t, http.MethodPost, base+"/events", map[string]any{
			"generation_id": club.GenerationID + 1000, "title": "Nowhere", "start": time.Now().Add(-29 * time.Minute), "fail_minutes": 30,
		})
		require.Equal(t, http.StatusUnprocessableEntity, status, out)
		var events, jobs int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE title = 'Nowhere'`).Scan(&events))
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job j WHERE kind = 'attendance.settle_event'
			AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = (j.args ->> 'event_id')::bigint)`).Scan(&jobs))
		require.Zero(t, events)
		require.Zero(t, jobs, "the job rolled back with the event")

		status, _ = call(t, http.MethodPatch, base+"/events/999999", map[string]any{"fail_minutes": 5})
		require.Equal(t, http.StatusNotFound, status)
	})
}

// TestDemoMode runs the self-contained demo: a scratch schema created and
// migrated by the program, and a runner embedded in it.
func TestDemoMode(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	schema := "backend_demo_" + strings.ReplaceAll(fmt.Sprint(time.Now().UnixNano()), "-", "")
	admin := wassotest.AdminPool(t)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	base := startBackend(t, "-database-url", wassotest.ServerURL(t), "-schema", schema, "-migrate", "-runner")

	conn, err := pgx.Connect(ctx, wassotest.WithSearchPath(wassotest.ServerURL(t), schema))
	require.NoError(t, err)
	defer conn.Close(ctx)
	club, err := seed.CreateClub(ctx, conn, "Go club", 2, time.Now())
	require.NoError(t, err)

	status, created := call(t, http.MethodPost, base+"/events", map[string]any{
		"generation_id": club.GenerationID, "title": "Demo", "start": time.Now().Add(time.Second - 10*time.Minute), "fail_minutes": 10,
	})
	require.Equal(t, http.StatusCreated, status, created)
	settled := waitSettled(t, base, int64(created["id"].(float64)))
	require.EqualValues(t, 2, settled["created_rows"])
}
