package attendance_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
)

// BenchmarkSweepParallel settles a backlog of due events with the serial
// sweep (SettleDue, 100 events per transaction, one at a time), with two
// and four batches in flight (SettleParams.Parallel), with referenceSQL
// under the server's work_mem, and with referenceSQL given the 64MB of
// work_mem a settlement transaction sets itself. All run in the same
// iteration and on the same data (restored between runs, off the clock);
// each sweep's ratio to both references is reported. The large size is
// BenchmarkSweep's large data set.
//
//	go test ./attendance -run '^$' -bench BenchmarkSweepParallel -benchtime 2x
func BenchmarkSweepParallel(b *testing.B) {
	for _, size := range []struct {
		name  string
		shape seed.Shape
	}{
		{"500x200", seed.Shape{Generations: 10, Members: 200, DueEvents: 500}},
		{"large_1000x1000", seed.Shape{Generations: 10, Members: 1000, DueEvents: 1000}},
	} {
		b.Run(size.name, func(b *testing.B) { benchSweepParallel(b, size.shape) })
	}
}

func benchSweepParallel(b *testing.B, shape seed.Shape) {
	ctx := context.Background()
	now := time.Now()
	db, _, restore := newBenchData(b, shape, now)

	runs := []struct {
		name     string
		parallel int
	}{{"serial", 1}, {"parallel2", 2}, {"parallel4", 4}, {"reference", 0}, {"reference_64MB", -1}}
	spent := make([]time.Duration, len(runs))
	var rows int
	b.ResetTimer()
	for i := range b.N {
		for k := range runs {
			// Rotate the order, so that no run always follows the same one.
			j := (k + i) % len(runs)
			if i == 0 {
				j = k // the serial sweep first: the others check its rows
			}
			restore()
			start := time.Now()
			if runs[j].parallel <= 0 {
				var updated, created int
				// reference_64MB gets the work_mem a settlement sets itself.
				require.NoError(b, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
					if runs[j].parallel < 0 {
						if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
							return err
						}
					}
					return tx.QueryRow(ctx, referenceSQL, now).Scan(&updated, &created)
				}))
				spent[j] += time.Since(start)
				require.Equal(b, rows, updated+created)
				continue
			}
			res, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: now, Parallel: runs[j].parallel})
			require.NoError(b, err)
			spent[j] += time.Since(start)
			require.Equal(b, shape.DueEvents, res.ProcessedEvents)
			if rows == 0 {
				rows = res.UpdatedRows + res.CreatedRows
			}
			require.Equal(b, rows, res.UpdatedRows+res.CreatedRows)
		}
	}
	b.StopTimer()
	ref, ref64 := spent[len(runs)-2], spent[len(runs)-1]
	for j, r := range runs {
		b.ReportMetric(spent[j].Seconds()/float64(b.N), r.name+"_s")
		if r.parallel > 0 {
			b.ReportMetric(spent[j].Seconds()/ref.Seconds(), r.name+"/ref")
			b.ReportMetric(spent[j].Seconds()/ref64.Seconds(), r.name+"/ref_64MB")
		}
	}
	b.Logf("%d rows settled per run, %d due events", rows, shape.DueEvents)
}
