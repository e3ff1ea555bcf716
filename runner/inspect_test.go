package runner_test

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

func inspectJSON(t *testing.T, db *wassotest.DB, what string, v any) {
	t.Helper()
	res := runCLI(t, cliOpts{}, args([]string{"inspect", what, "--json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.NoError(t, json.Unmarshal([]byte(res.stdout), v), res.stdout)
}

func inspectTable(t *testing.T, db *wassotest.DB, what string) string {
	t.Helper()
	res := runCLI(t, cliOpts{}, args([]string{"inspect", what}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	return res.stdout
}

// TestInspect: the celery inspect equivalents, as tables and JSON, on
// jobs the test puts in each state (no runner is running: the test is
// the cluster).
func TestInspect(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	ctx := context.Background()
	client := controlClient(t, db)
	running, err := client.Insert(ctx, noopArgs{N: 1}, &river.InsertOpts{Queue: "mail"})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '90 seconds', attempted_by = '{runner-a}' WHERE id = $1`, running.Job.ID)
	require.NoError(t, err)
	scheduled, err := client.Insert(ctx, noopArgs{N: 2}, &river.InsertOpts{ScheduledAt: time.Now().Add(2 * time.Hour)})
	require.NoError(t, err)
	sweep, err := client.Insert(ctx, attendance.SweepArgs{}, nil)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', attempt = 1, finalized_at = now(),
		metadata = '{"output": {"processed_events": 2, "updated_rows": 3, "created_rows": 4}}' WHERE id = $1`, sweep.Job.ID)
	require.NoError(t, err)

	t.Run("active", func(t *testing.T) {
		t.Parallel()
		var active []jobRow
		inspectJSON(t, db, "active", &active)
		require.Len(t, active, 1)
		require.Equal(t, running.Job.ID, active[0].ID)
		out := inspectTable(t, db, "active")
		require.Contains(t, out, "RUNNING FOR")
		require.Contains(t, out, "runner-a")
		require.Contains(t, out, "mail")
	})

	t.Run("registered", func(t *testing.T) {
		t.Parallel()
		var reg struct {
			Kinds []struct {
				Kind   string           `json:"kind"`
				Counts map[string]int64 `json:"jobs_by_state"`
			} `json:"kinds"`
			Queues []string `json:"queues"`
		}
		inspectJSON(t, db, "registered", &reg)
		var kinds []string
		for _, k := range reg.Kinds {
			kinds = append(kinds, k.Kind)
			if k.Kind == attendance.SweepKind {
				require.Equal(t, int64(1), k.Counts["completed"])
			}
		}
		require.Contains(t, kinds, attendance.SweepKind)
		require.NotContains(t, kinds, "test.noop", "no runner works the test's kind")
		require.Contains(t, reg.Queues, "default")
		res := runCLI(t, cliOpts{}, args([]string{"inspect", "registered"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stdout, attendance.SweepKind)
	})

	t.Run("scheduled", func(t *testing.T) {
		t.Parallel()
		// The periodic jobs are the stored schedules now; this database
		// has none (setup and run seed them: see TestScheduleInspect).
		var sched struct {
			Jobs      []jobRow `json:"jobs"`
			Schedules []any    `json:"schedules"`
		}
		inspectJSON(t, db, "scheduled", &sched)
		require.Len(t, sched.Jobs, 1)
		require.Equal(t, scheduled.Job.ID, sched.Jobs[0].ID)
		require.NotNil(t, sched.Schedules)
		require.Empty(t, sched.Schedules)
		before := time.Now()
		out := inspectTable(t, db, "scheduled")
		after := time.Now()
		require.Contains(t, out, "RUNS AT")
		// In how long the job runs, as of the command, rounded to the
		// minute.
		m := regexp.MustCompile(`\bin (\d+h\d+m0s)\b`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		in, err := time.ParseDuration(m[1])
		require.NoError(t, err)
		at := scheduled.Job.ScheduledAt
		require.True(t, in >= at.Sub(after)-30*time.Second && in <= at.Sub(before)+30*time.Second,
			"runs in %s; scheduled at %s, inspected between %s and %s", in, at, before, after)
		require.Contains(t, out, "(no schedules: wasso-runner setup seeds the attendance sweep)")
	})

	t.Run("queues", func(t *testing.T) {
		t.Parallel()
		var queues []struct {
			Name   string           `json:"name"`
			Paused bool             `json:"paused"`
			Counts map[string]int64 `json:"jobs_by_state"`
		}
		inspectJSON(t, db, "queues", &queues)
		byName := map[string]map[string]int64{}
		for _, q := range queues {
			byName[q.Name] = q.Counts
		}
		require.Equal(t, int64(1), byName["mail"]["running"])
		require.Equal(t, int64(1), byName["default"]["scheduled"])
		out := inspectTable(t, db, "queues")
		require.Contains(t, out, "PAUSED")
		require.Contains(t, out, "mail")
	})

	t.Run("stats", func(t *testing.T) {
		t.Parallel()
		var stats struct {
			JobsByState map[string]int64 `json:"jobs_by_state"`
			Leader      any              `json:"leader"`
			Sweep       struct {
				CompletedLast24h int64 `json:"completed_last_24h"`
				LastOutput       *struct {
					ProcessedEvents int `json:"processed_events"`
					CreatedRows     int `json:"created_rows"`
				} `json:"last_output"`
			} `json:"sweep"`
		}
		inspectJSON(t, db, "stats", &stats)
		require.Equal(t, int64(1), stats.JobsByState["running"])
		require.Equal(t, int64(1), stats.JobsByState["scheduled"])
		require.Equal(t, int64(1), stats.JobsByState["completed"])
		require.Zero(t, stats.JobsByState["discarded"])
		require.Nil(t, stats.Leader)
		require.Equal(t, int64(1), stats.Sweep.CompletedLast24h)
		require.NotNil(t, stats.Sweep.LastOutput)
		require.Equal(t, 2, stats.Sweep.LastOutput.ProcessedEvents)
		require.Equal(t, 4, stats.Sweep.LastOutput.CreatedRows)
		out := inspectTable(t, db, "stats")
		require.Contains(t, out, "leader: none")
		require.Contains(t, out, "last sweep:")
		require.Contains(t, out, "2 events, 3 rows to ABSENT, 4 ABSENT rows created")
	})
}

// TestInspectScheduledExactDeadlines lists the per-event settlements still
// ahead: scheduled jobs, or available ones with a future scheduled_at once
// the leader has made them available just before their deadline.
func TestInspectScheduledExactDeadlines(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	ctx := context.Background()
	_, eventID := dueClub(t, db, 2)
	_, err := db.Pool.Exec(ctx, `UPDATE events SET start_datetime = now() + interval '1 hour' WHERE id = $1`, eventID)
	require.NoError(t, err)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // committed below
	_, err = attendance.ScheduleEventTx(ctx, tx, controlClient(t, db), eventID)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var state string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state FROM river_job WHERE kind = $1`, attendance.SettleEventKind).Scan(&state))
	require.Equal(t, "scheduled", state)

	var sched struct {
		Jobs []jobRow `json:"jobs"`
	}
	inspectJSON(t, db, "scheduled", &sched)
	require.Len(t, sched.Jobs, 1)
	require.Equal(t, attendance.SettleEventKind, sched.Jobs[0].Kind)
}
