package runner

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFormatProgress: the terminal line from counts alone, so that it is
// checked without a terminal or a clock.
func TestFormatProgress(t *testing.T) {
	t.Parallel()
	require.Equal(t, "settled 100/400 events (25%), 3000 rows, 50 events/s, 6s left",
		formatProgress(sweepProgress, 100, 400, 3000, 2*time.Second))
	require.Equal(t, "settled 0/400 events (0%), 0 rows, 0 events/s, ? left",
		formatProgress(sweepProgress, 0, 400, 0, 0))
	require.Equal(t, "settled 400/400 events (100%), 12000 rows, 100 events/s, 0s left",
		formatProgress(sweepProgress, 400, 400, 12000, 4*time.Second))
	require.Equal(t, "settled 400 of 400 events, 12000 rows, in 4s (100 events/s)",
		formatSummary(sweepProgress, 400, 400, 12000, 4*time.Second))
	require.Equal(t, "deleted 3000/12000 jobs (25%), 1000 jobs/s, 9s left",
		formatProgress(purgeProgress, 3000, 12000, 0, 3*time.Second))
	require.Equal(t, "deleted 12000 of 12000 jobs, in 12s (1000 jobs/s)",
		formatSummary(purgeProgress, 12000, 12000, 0, 12*time.Second))
}

// TestProgressTerminal: on a terminal each batch redraws the line in
// place and finish leaves the summary on a line of its own; no log lines.
func TestProgressTerminal(t *testing.T) {
	t.Parallel()
	var out, logs bytes.Buffer
	clock := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	p := &progress{out: &out, logger: slog.New(slog.NewTextHandler(&logs, nil)), kind: sweepProgress, msg: "sweep progress", due: 250, start: clock, now: func() time.Time { return clock }}
	clock = clock.Add(time.Second)
	p.add(100, 300)
	clock = clock.Add(time.Second)
	p.add(100, 300)
	clock = clock.Add(time.Second)
	p.add(60, 180) // came due after the count: due follows
	clock = clock.Add(time.Second)
	p.finish()
	s := out.String()
	require.Equal(t, 4, bytes.Count(out.Bytes(), []byte("\r")), s)
	require.Contains(t, s, "\rsettled 100/250 events (40%), 300 rows, 100 events/s, 2s left\x1b[K")
	require.Contains(t, s, "\rsettled 260/260 events (100%), 780 rows, 87 events/s, 0s left\x1b[K")
	require.True(t, bytes.HasSuffix(out.Bytes(), []byte("\r\x1b[Ksettled 260 of 260 events, 780 rows, in 4s (65 events/s)\n")), s)
	require.Empty(t, logs.String())
}

// TestProgressLog: without a terminal the first batch is logged at once
// and the next ones at most every progressLogEvery.
func TestProgressLog(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	clock := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	p := &progress{logger: slog.New(slog.NewTextHandler(&logs, nil)), kind: sweepProgress, msg: "sweep progress", due: 400, start: clock, now: func() time.Time { return clock }}
	clock = clock.Add(time.Second)
	p.add(100, 300)
	clock = clock.Add(time.Second) // a second after the first line: not logged
	p.add(100, 300)
	clock = clock.Add(time.Second) // two seconds after it: logged
	p.add(100, 300)
	p.finish()
	require.Equal(t, 2, bytes.Count(logs.Bytes(), []byte("msg=\"sweep progress\"")), logs.String())
	require.Contains(t, logs.String(), "settled_events=100 total_events=400 rows=300 events_per_second=100 elapsed=1s eta=3s")
	require.Contains(t, logs.String(), "settled_events=300 total_events=400 rows=900 events_per_second=100 elapsed=3s eta=1s")
}

// TestProgressQuiet: work that ends within the quiet time reports nothing,
// on a terminal or in a log; past it, it reports as usual.
func TestProgressQuiet(t *testing.T) {
	t.Parallel()
	var out, logs bytes.Buffer
	clock := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	p := &progress{out: &out, logger: logger, kind: purgeProgress, msg: "purge progress", due: 3000, quiet: time.Second, start: clock, now: func() time.Time { return clock }}
	clock = clock.Add(500 * time.Millisecond)
	p.add(1000, 0)
	p.finish()
	require.Empty(t, out.String())

	clock = clock.Add(time.Second)
	p.add(1000, 0)
	p.finish()
	require.Equal(t, "\rdeleted 2000/3000 jobs (67%), 1333 jobs/s, 1s left\x1b[K\r\x1b[Kdeleted 2000 of 3000 jobs, in 1.5s (1333 jobs/s)\n", out.String())

	q := &progress{logger: logger, kind: purgeProgress, msg: "purge progress", due: 3000, quiet: time.Second, start: clock, now: func() time.Time { return clock }}
	q.add(1000, 0)
	q.finish()
	require.Empty(t, logs.String())

	// A one-transaction job that ends before its quiet time logs nothing.
	finish := slowNotice(logger, time.Hour, "backfill running")
	finish("backfill done", "enqueued", 3)
	require.Empty(t, logs.String())
}
