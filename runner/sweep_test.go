package runner_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

type sweepOutput struct {
	DryRun          bool `json:"dry_run"`
	ProcessedEvents int  `json:"processed_events"`
	UpdatedRows     int  `json:"updated_rows"`
	CreatedRows     int  `json:"created_rows"`
	Events          []struct {
		EventID     int64  `json:"event_id"`
		Title       string `json:"title"`
		UpdatedRows int    `json:"updated_rows"`
		CreatedRows int    `json:"created_rows"`
	} `json:"events"`
}

func sweepJSON(t *testing.T, db *wassotest.DB, extra ...string) sweepOutput {
	t.Helper()
	res := runCLI(t, cliOpts{}, args([]string{"sweep", "--json"}, dbArgs(db), extra)...)
	require.Equal(t, 0, res.code, res.String())
	var out sweepOutput
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
	return out
}

// TestSweep: --dry-run reports exactly what a sweep will do and changes
// nothing; sweep settles in the foreground and prints the counts; a second
// sweep finds nothing; --enqueue inserts a job instead.
func TestSweep(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	club, eventID := dueClub(t, db, 3)
	attendances := `SELECT count(*) FROM attendances WHERE event_id = $1`

	res := runCLI(t, cliOpts{}, args([]string{"sweep", "--dry-run"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "dry run: would settle 1 events: 0 rows to ABSENT, 3 ABSENT rows created (nothing changed)")
	require.Contains(t, res.stdout, "Weekly meeting")

	dry := sweepJSON(t, db, "--dry-run")
	require.True(t, dry.DryRun)
	require.Equal(t, 1, dry.ProcessedEvents)
	require.Equal(t, 3, dry.CreatedRows)
	require.Len(t, dry.Events, 1)
	require.Equal(t, eventID, dry.Events[0].EventID)
	require.Equal(t, 3, dry.Events[0].CreatedRows)
	require.Zero(t, count(t, db.Pool, attendances, eventID), "a dry run changes nothing")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement`))

	res = runCLI(t, cliOpts{}, args([]string{"sweep"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "settled 1 events: 0 rows to ABSENT, 3 ABSENT rows created")
	require.Equal(t, len(club.MappingIDs), count(t, db.Pool, attendances+` AND status = 3`, eventID))
	require.Contains(t, res.stderr, "attendance sweep", "the sweep logs its counts")
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = $1`, attendance.NotifyAbsentKind),
		"the foreground sweep enqueues the absent notice, as the sweep job does")

	again := sweepJSON(t, db)
	require.Zero(t, again.ProcessedEvents)
	require.Empty(t, again.Events)
	require.Zero(t, sweepJSON(t, db, "--dry-run").ProcessedEvents)

	res = runCLI(t, cliOpts{}, args([]string{"sweep", "--enqueue", "--lookback", "72h"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "enqueued attendance.sweep job")
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND state = 'available' AND (args->>'lookback')::bigint = 72::bigint * 3600 * 1000000000`))

	res = runCLI(t, cliOpts{}, args([]string{"sweep", "--enqueue", "--dry-run"}, dbArgs(db))...)
	require.Equal(t, 2, res.code, res.String())
}

// TestSweepProgress: a foreground sweep over a backlog of several batches,
// its stderr not a terminal, logs its progress as structured lines (the
// first batch's at once, then at most one every two seconds) and ends with
// its summary; the batches settle two at a time (sweep.parallel).
func TestSweepProgress(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	_, err := seed.Generate(context.Background(), db.Pool, seed.Shape{Generations: 3, Members: 5, DueEvents: 300}, dbNow(t, db))
	require.NoError(t, err)

	res := runCLI(t, cliOpts{}, args([]string{"sweep", "--log-format", "json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "settled 300 events")
	require.NotContains(t, res.stderr, "\r", "no terminal, no line redrawn in place")

	var progress, summaries int
	for line := range strings.Lines(res.stderr) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		switch m["msg"] {
		case "sweep progress":
			progress++
			require.EqualValues(t, 300, m["total_events"], line)
			require.Positive(t, m["settled_events"], line)
			require.LessOrEqual(t, m["settled_events"], float64(300), line)
			require.Contains(t, m, "events_per_second", line)
			require.Contains(t, m, "eta", line)
			require.Contains(t, m, "rows", line)
		case "attendance sweep":
			summaries++
			require.EqualValues(t, 300, m["processed_events"], line)
			require.EqualValues(t, 300, m["due_events"], line)
			require.EqualValues(t, wassoriver.SweepParallelDefault, m["parallel"], line)
		}
	}
	require.GreaterOrEqual(t, progress, 1, "the first batch is logged at once:\n%s", res.stderr)
	require.Equal(t, 1, summaries, res.stderr)
	require.Equal(t, 300, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE settle_count = 1`))

	// One batch or less due: no progress, only the summary.
	_, eventID := dueClub(t, db, 2)
	res = runCLI(t, cliOpts{}, args([]string{"sweep", "--log-format", "json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.NotContains(t, res.stderr, "sweep progress")
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE event_id = $1`, eventID))
}
