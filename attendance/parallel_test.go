package attendance_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// TestSettleDueParallel settles a backlog with several batches in flight:
// every event is settled once, in one batch, and the result lists them by
// ascending id as a serial sweep does.
func TestSettleDueParallel(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club := goClub(t, db, 5)
	var ids []int64
	for i := range 40 {
		ids = append(ids, dueEvent(t, db.Pool, club.GenerationID, time.Duration(1+i%7)*time.Minute))
	}

	var batches atomic.Int64
	var inBatches atomic.Int64
	// OnBatch sees each committed batch once, one call at a time.
	var reported, reports, inOnBatch atomic.Int64
	onBatch := func(batch *attendance.SettleResult) {
		require.EqualValues(t, 1, inOnBatch.Add(1), "OnBatch is never called concurrently")
		defer inOnBatch.Add(-1)
		reports.Add(1)
		reported.Add(int64(batch.ProcessedEvents))
	}
	res, err := attendance.SettleDueFunc(ctx, db.Pool, attendance.SettleParams{Now: testNow, Limit: 3, Parallel: 4, OnBatch: onBatch}, func(ctx context.Context, tx pgx.Tx, batch *attendance.SettleResult) error {
		batches.Add(1)
		inBatches.Add(int64(batch.ProcessedEvents))
		require.LessOrEqual(t, batch.ProcessedEvents, 3)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 40, res.ProcessedEvents)
	require.EqualValues(t, 40, inBatches.Load(), "each event in one batch")
	require.GreaterOrEqual(t, batches.Load(), int64(14))
	require.EqualValues(t, 40, reported.Load())
	require.Equal(t, batches.Load(), reports.Load(), "one report per committed batch")
	require.Equal(t, 5*40, res.CreatedRows)
	var got []int64
	for _, ev := range res.Events {
		got = append(got, ev.EventID)
	}
	require.Equal(t, ids, got)
	require.Equal(t, 40, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE settle_count = 1 AND settled_at = $1`, testNow))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM (SELECT 1 FROM attendances GROUP BY event_id, generation_mapping_id HAVING count(*) > 1) d`))

	again, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow, Parallel: 4})
	require.NoError(t, err)
	require.Zero(t, again.ProcessedEvents)

	_, err = attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Parallel: -1})
	require.ErrorIs(t, err, attendance.ErrInvalidParams)
}

// TestSettleDueParallelCancelled cancels a parallel backlog sweep midway,
// in one batch's transaction while others are in flight: it returns the
// cancellation, counts exactly the events committed, and leaves every
// event settled or untouched, never half settled.
func TestSettleDueParallelCancelled(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	club := goClub(t, db, 30)
	for range 40 {
		dueEvent(t, db.Pool, club.GenerationID, time.Minute)
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var batches atomic.Int64
	res, err := attendance.SettleDueFunc(cctx, db.Pool, attendance.SettleParams{Now: testNow, Limit: 2, Parallel: 3}, func(ctx context.Context, tx pgx.Tx, batch *attendance.SettleResult) error {
		if batches.Add(1) == 5 {
			// Cancelled after this batch's statements ran, before its
			// commit, while other workers' batches are in flight.
			cancel()
		}
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)

	var settled, untouched int
	rows, err := db.Pool.Query(ctx, `
		SELECT s.event_id IS NOT NULL,
		       (SELECT count(*) FROM attendances a WHERE a.event_id = e.id AND a.status = 3)
		FROM events e LEFT JOIN wasso_settlement s ON s.event_id = e.id`)
	require.NoError(t, err)
	var recorded bool
	var absentRows int
	_, err = pgx.ForEachRow(rows, []any{&recorded, &absentRows}, func() error {
		switch {
		case recorded && absentRows == 30:
			settled++
		case !recorded && absentRows == 0:
			untouched++
		default:
			t.Errorf("half settled: recorded %v, %d of 30 members absent", recorded, absentRows)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 40, settled+untouched)
	require.Equal(t, res.ProcessedEvents, settled, "the result counts the committed events")
	require.Positive(t, settled, "the first batches committed")
	require.Positive(t, untouched, "the sweep stopped midway")

	// A sweep afterwards settles the rest, once.
	rest, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow, Parallel: 3})
	require.NoError(t, err)
	require.Equal(t, untouched, rest.ProcessedEvents)
	require.Equal(t, 40, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE settle_count = 1`))
}
