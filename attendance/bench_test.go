package attendance_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// referenceSQL is the sweep's work written as one hand-made set-based
// statement, with none of the scheduler's bookkeeping (no claim, no
// settlement record, no per-event results): the floor the sweep is
// compared with.
const referenceSQL = `
WITH due AS (
    SELECT e.id, e.generation_id FROM events e
    JOIN club_generation g ON g.id = e.generation_id AND NOT g.is_deleted
    WHERE e.start_datetime + make_interval(mins => e.fail_minutes) <= $1
      AND e.start_datetime + make_interval(mins => e.fail_minutes) > $1 - interval '24 hours'
),
roster AS MATERIALIZED (
    SELECT d.id AS event_id, gm.id AS mapping_id
    FROM due d
    JOIN generation_mapping gm ON gm.generation_id = d.generation_id AND gm.is_current
    JOIN club_member m ON m.id = gm.member_id AND NOT m.is_deleted
),
latest AS MATERIALIZED (
    SELECT DISTINCT ON (a.event_id, a.generation_mapping_id) a.id, a.status, a.event_id, a.generation_mapping_id
    FROM attendances a JOIN due d ON d.id = a.event_id
    ORDER BY a.event_id, a.generation_mapping_id, a.created_at DESC, a.id DESC
),
updated AS (
    UPDATE attendances a SET status = 3, is_modified = true, modified_at = $1
    FROM latest l JOIN roster r ON r.event_id = l.event_id AND r.mapping_id = l.generation_mapping_id
    WHERE a.id = l.id AND l.status = 0
    RETURNING 1
),
created AS (
    INSERT INTO attendances (status, "timestamp", created_at, modified_at, is_modified, event_id, generation_mapping_id)
    SELECT 3, $1, $1, $1, true, r.event_id, r.mapping_id FROM roster r
    LEFT JOIN latest l ON l.event_id = r.event_id AND l.generation_mapping_id = r.mapping_id
    WHERE l.id IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM created)`

// BenchmarkSweep settles every due event of a generated data set with the
// sweep (SettleDue, a transaction per 100 events, as the worker runs it)
// and with referenceSQL, in the same iteration and on the same data
// (restored between runs, off the clock), and reports both rates and their
// ratio.
//
//	go test ./attendance -run '^$' -bench BenchmarkSweep -benchtime 3x
func BenchmarkSweep(b *testing.B) {
	for _, size := range []struct {
		name  string
		shape seed.Shape
	}{
		{"small_20x50", seed.Shape{Generations: 4, Members: 50, DueEvents: 20}},
		{"large_1000x1000", seed.Shape{Generations: 10, Members: 1000, DueEvents: 1000}},
	} {
		b.Run(size.name, func(b *testing.B) {
			ctx := context.Background()
			now := time.Now()
			db, counts, restore := newBenchData(b, size.shape, now)

			var sweepTime, refTime time.Duration
			var rows int
			b.ResetTimer()
			for i := range b.N {
				run := func(name string) {
					restore()
					start := time.Now()
					switch name {
					case "sweep":
						res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: now})
						require.NoError(b, err)
						sweepTime += time.Since(start)
						rows = res.UpdatedRows + res.CreatedRows
						require.Equal(b, size.shape.DueEvents, res.ProcessedEvents)
					case "reference":
						var updated, created int
						require.NoError(b, db.Pool.QueryRow(ctx, referenceSQL, now).Scan(&updated, &created))
						refTime += time.Since(start)
						require.Equal(b, rows, updated+created, "the reference does the same work")
					}
				}
				// The sweep runs first in the first iteration, since the
				// reference checks its row count against the sweep's.
				if i%2 == 0 {
					run("sweep")
					run("reference")
				} else {
					run("reference")
					run("sweep")
				}
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(rows)/(sweepTime.Seconds()/n), "sweep_rows/s")
			b.ReportMetric(float64(rows)/(refTime.Seconds()/n), "ref_rows/s")
			b.ReportMetric(sweepTime.Seconds()/n, "sweep_s")
			b.ReportMetric(refTime.Seconds()/n, "ref_s")
			b.ReportMetric(sweepTime.Seconds()/refTime.Seconds(), "sweep/ref")
			b.Logf("%s: %d attendance rows before, %d rows settled per run, %d members (%d soft-deleted), %d mappings",
				size.name, counts.Attendances, rows, counts.Members, counts.DeletedMembers, counts.Mappings)
		})
	}
}

// BenchmarkIdleSweep measures a sweep with nothing due on a database
// holding history (1,000,000 attendance rows of past events, and the
// events of the last day already settled) and on an almost empty one, in
// the same iteration, and reports their ratio.
//
//	go test ./attendance -run '^$' -bench BenchmarkIdleSweep -benchtime 200x
func BenchmarkIdleSweep(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	setup := func(shape seed.Shape) *wassotest.DB {
		db := wassotest.NewDB(b, wassotest.Options{})
		_, err := seed.Generate(ctx, db.Pool, shape, now)
		require.NoError(b, err)
		// Settle what is due, so that the sweeps below find nothing.
		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: now})
		require.NoError(b, err)
		require.Equal(b, shape.DueEvents, res.ProcessedEvents)
		_, err = db.Pool.Exec(ctx, `VACUUM ANALYZE`)
		require.NoError(b, err)
		return db
	}
	big := setup(seed.Shape{Generations: 10, Members: 100, DueEvents: 50, HistoryEvents: 10_000})
	small := setup(seed.Shape{Generations: 1, Members: 2, DueEvents: 1})
	var bigRows, smallRows int
	require.NoError(b, big.Pool.QueryRow(ctx, `SELECT count(*) FROM attendances`).Scan(&bigRows))
	require.NoError(b, small.Pool.QueryRow(ctx, `SELECT count(*) FROM attendances`).Scan(&smallRows))
	require.GreaterOrEqual(b, bigRows, 1_000_000)

	sweep := func(db *wassotest.DB) time.Duration {
		start := time.Now()
		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: now})
		require.NoError(b, err)
		require.Zero(b, res.ProcessedEvents)
		return time.Since(start)
	}
	// Warm both pools' connections and plan caches.
	sweep(big)
	sweep(small)
	var bigTime, smallTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			bigTime += sweep(big)
			smallTime += sweep(small)
		} else {
			smallTime += sweep(small)
			bigTime += sweep(big)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(bigTime.Microseconds())/n, "history_us/sweep")
	b.ReportMetric(float64(smallTime.Microseconds())/n, "empty_us/sweep")
	b.ReportMetric(bigTime.Seconds()/smallTime.Seconds(), "history/empty")
	b.Logf("%s rows vs %s rows", fmt.Sprint(bigRows), fmt.Sprint(smallRows))
}

// BenchmarkReconcile measures what the sweep adds after settling: a
// Reconcile and a Prune that find nothing to do, on the data sets of
// BenchmarkIdleSweep (the big one has 50 events of 100 members settled
// within the lookback, over 1,000,000 rows of history), side by side with
// the idle SettleDue they follow.
//
//	go test ./attendance -run '^$' -bench BenchmarkReconcile -benchtime 200x
func BenchmarkReconcile(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	db := wassotest.NewDB(b, wassotest.Options{})
	shape := seed.Shape{Generations: 10, Members: 100, DueEvents: 50, HistoryEvents: 10_000}
	_, err := seed.Generate(ctx, db.Pool, shape, now)
	require.NoError(b, err)
	_, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: now})
	require.NoError(b, err)
	_, err = db.Pool.Exec(ctx, `VACUUM ANALYZE`)
	require.NoError(b, err)
	timed := func(f func() error) time.Duration {
		start := time.Now()
		require.NoError(b, f())
		return time.Since(start)
	}
	var settleTime, reconcileTime, pruneTime time.Duration
	b.ResetTimer()
	for range b.N {
		settleTime += timed(func() error {
			_, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: now})
			return err
		})
		reconcileTime += timed(func() error {
			res, err := attendance.Reconcile(ctx, db.Pool, attendance.SettleParams{Now: now})
			if err == nil && (res.CheckedEvents != shape.DueEvents || res.RepairedRows != 0) {
				err = fmt.Errorf("reconcile checked %d events and repaired %d rows", res.CheckedEvents, res.RepairedRows)
			}
			return err
		})
		pruneTime += timed(func() error {
			_, err := attendance.Prune(ctx, db.Pool, attendance.SettleParams{Now: now})
			return err
		})
	}
	n := float64(b.N)
	b.ReportMetric(float64(settleTime.Microseconds())/n, "settle_us")
	b.ReportMetric(float64(reconcileTime.Microseconds())/n, "reconcile_us")
	b.ReportMetric(float64(pruneTime.Microseconds())/n, "prune_us")
	b.ReportMetric(reconcileTime.Seconds()/settleTime.Seconds(), "reconcile/settle")
}

// BenchmarkWriterWait measures what waiting for writers in flight costs a
// settlement when none is in flight (the pg_locks look-up), settling one
// event of 30 members whose deadline has just passed with the default
// WriterWait and without it, alternately, on the same data (restored off
// the clock).
//
//	go test ./attendance -run '^$' -bench BenchmarkWriterWait -benchtime 300x
func BenchmarkWriterWait(b *testing.B) {
	ctx := context.Background()
	db := wassotest.NewDB(b, wassotest.Options{})
	club, err := seed.CreateClub(ctx, db.Pool, "Bench club", 30, time.Now().Add(-48*time.Hour))
	require.NoError(b, err)
	event, err := seed.CreateEvent(ctx, db.Pool, seed.Event{
		GenerationID: club.GenerationID, Title: "Practice", FailMinutes: 30,
		Start: time.Now().Add(-30*time.Minute - time.Second),
	}, time.Now().Add(-time.Hour))
	require.NoError(b, err)
	reset := func() {
		b.StopTimer()
		_, err := db.Pool.Exec(ctx, `DELETE FROM attendances WHERE event_id = $1; `, event)
		require.NoError(b, err)
		_, err = db.Pool.Exec(ctx, `DELETE FROM wasso_settlement WHERE event_id = $1`, event)
		require.NoError(b, err)
		b.StartTimer()
	}
	settle := func(wait time.Duration) time.Duration {
		reset()
		start := time.Now()
		res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{EventIDs: []int64{event}, WriterWait: wait})
		elapsed := time.Since(start)
		require.NoError(b, err)
		require.Equal(b, 30, res.CreatedRows)
		return elapsed
	}
	settle(0)
	settle(-1)
	var with, without time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			with += settle(0)
			without += settle(-1)
		} else {
			without += settle(-1)
			with += settle(0)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(with.Microseconds())/n, "wait_us/settle")
	b.ReportMetric(float64(without.Microseconds())/n, "nowait_us/settle")
	b.ReportMetric(with.Seconds()/without.Seconds(), "wait/nowait")
}

// newBenchData seeds a database of its own with shape at now and returns
// it with a function that restores its attendance rows to the seeded ones
// and clears the settlements, off the clock, for the next run.
func newBenchData(b *testing.B, shape seed.Shape, now time.Time) (*wassotest.DB, *seed.Counts, func()) {
	ctx := context.Background()
	db := wassotest.NewDB(b, wassotest.Options{})
	counts, err := seed.Generate(ctx, db.Pool, shape, now)
	require.NoError(b, err)
	_, err = db.Pool.Exec(ctx, `CREATE TABLE bench_original AS SELECT * FROM attendances`)
	require.NoError(b, err)
	return db, counts, func() {
		b.StopTimer()
		defer b.StartTimer()
		_, err := db.Pool.Exec(ctx, `TRUNCATE attendances, wasso_settlement;
			INSERT INTO attendances SELECT * FROM bench_original`)
		require.NoError(b, err)
		_, err = db.Pool.Exec(ctx, `VACUUM ANALYZE attendances, wasso_settlement`)
		require.NoError(b, err)
		// A checkpoint, so that none lands in a run because the previous
		// run wrote a lot of WAL.
		_, err = db.Pool.Exec(ctx, `CHECKPOINT`)
		require.NoError(b, err)
	}
}
