package schedule

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/seed"
)

// benchFixture is a fixture holding n schedules of one minute whose next
// slot is at, the store's defaults otherwise (MissedOnce, OverlapSkip),
// logging each job at Info through a JSON handler, as a runner does (to
// io.Discard), and vacuumed. Its scheduler works on a pool of its own
// that sends statements unnamed, as wasso-runner's does
// (QueryExecModeExec): each is planned with its values.
func benchFixture(b testing.TB, n int, at time.Time) *schedulerFixture {
	b.Helper()
	ctx := context.Background()
	f := newSchedulerFixture(b, StoreConfig{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	f.setNow(at.Add(-time.Second))
	f.create(b, Schedule{Name: "bench-00000", Every: time.Minute, StartAt: at})
	if n > 1 {
		_, err := seed.CloneSchedule(ctx, f.db.Pool, "bench-00000", n-1, "bench-")
		require.NoError(b, err)
	}
	vacuum(b, f)
	cfg, err := pgxpool.ParseConfig(f.db.URL)
	require.NoError(b, err)
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	f.sched, err = NewScheduler(pool, f.store)
	require.NoError(b, err)
	return f
}

func vacuum(b testing.TB, f *schedulerFixture) {
	b.Helper()
	_, err := f.db.Pool.Exec(context.Background(), `VACUUM ANALYZE wasso_schedule, wasso_schedule_slot, river_job`)
	require.NoError(b, err)
}

// BenchmarkPass times a pass over n schedules all due at one instant,
// with the defaults (batches of PassBatchDefault, two at a time): one slot
// of each per iteration, after an untimed first pass that warms the
// connections, the jobs of the slot before completed off the clock, so
// that every pass also reads the last jobs (OverlapSkip). A pass costs a
// few milliseconds of statements plus a cost per schedule: ns/schedule
// falls towards the latter as n grows, and must not grow with n.
//
//	go test ./river/schedule -run '^$' -bench BenchmarkPass -benchtime 5x
func BenchmarkPass(b *testing.B) {
	for _, n := range []int{100, 1_000, 10_000} {
		b.Run(fmt.Sprintf("due=%d", n), func(b *testing.B) {
			ctx := context.Background()
			base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			f := benchFixture(b, n, base)
			f.sched.lastPrune = base.Add(24 * time.Hour) // the hourly prune of the slot table is not timed
			pass := func(i int) time.Duration {
				b.StopTimer()
				_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE state = 'available'`)
				require.NoError(b, err)
				b.StartTimer()
				start := time.Now()
				res, err := f.sched.runPass(ctx, base.Add(time.Duration(i)*time.Minute))
				elapsed := time.Since(start)
				require.NoError(b, err)
				require.Equal(b, n, res.Enqueued)
				return elapsed
			}
			pass(0)
			var total time.Duration
			b.ResetTimer()
			for i := range b.N {
				total += pass(i + 1)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*n), "ns/schedule")
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/pass")
		})
	}
}

// BenchmarkIdlePass compares, side by side in each iteration (the order
// alternating), what the loop costs when nothing is due over 10 schedules
// and over 10,000: its fallback poll (nextRun, one statement) and a pass
// that finds nothing due (runPass, one select). Both read the first
// entries of wasso_schedule_next_run_at_idx, so the ratios should stay
// near 1.
//
//	go test ./river/schedule -run '^$' -bench BenchmarkIdlePass -benchtime 2000x
func BenchmarkIdlePass(b *testing.B) {
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// Every schedule's next slot is an hour after the passes.
	small := benchFixture(b, 10, base.Add(time.Hour))
	big := benchFixture(b, 10_000, base.Add(time.Hour))
	type side struct {
		f          *schedulerFixture
		poll, pass time.Duration
	}
	sides := []*side{{f: small}, {f: big}}
	run := func(s *side) {
		start := time.Now()
		next, err := s.f.sched.nextRun(ctx)
		s.poll += time.Since(start)
		require.NoError(b, err)
		require.True(b, base.Add(time.Hour).Equal(*next))
		start = time.Now()
		res, err := s.f.sched.runPass(ctx, base)
		s.pass += time.Since(start)
		require.NoError(b, err)
		require.Zero(b, res.Schedules)
	}
	for _, s := range sides { // warm up; the first pass prunes the slot table
		run(s)
		s.poll, s.pass = 0, 0
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			run(sides[0])
			run(sides[1])
		} else {
			run(sides[1])
			run(sides[0])
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(sides[0].poll.Microseconds())/n, "poll10_us")
	b.ReportMetric(float64(sides[1].poll.Microseconds())/n, "poll10k_us")
	b.ReportMetric(sides[1].poll.Seconds()/sides[0].poll.Seconds(), "poll10k/10")
	b.ReportMetric(float64(sides[0].pass.Microseconds())/n, "pass10_us")
	b.ReportMetric(float64(sides[1].pass.Microseconds())/n, "pass10k_us")
	b.ReportMetric(sides[1].pass.Seconds()/sides[0].pass.Seconds(), "pass10k/10")
}

// BenchmarkLogOutcome times the log line of each job a pass enqueued, as
// a runner writes it: JSON, at Info, to a file (os.DevNull: a write
// system call a line, as to stderr) and, for the formatting alone, to
// io.Discard. A pass of 10,000 schedules writes 10,000 of them, once each
// batch has committed.
//
//	go test ./river/schedule -run '^$' -bench BenchmarkLogOutcome
func BenchmarkLogOutcome(b *testing.B) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(b, err)
	defer devNull.Close()
	slot := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	out := &scheduleOutcome{
		name:  "bench-00042",
		sched: &Schedule{Name: "bench-00042", Kind: "attendance.sweep"},
		jobs:  []slotJob{{slot: slot, jobID: 123456}},
	}
	for _, tc := range []struct {
		name string
		w    io.Writer
	}{{"devnull", devNull}, {"discard", io.Discard}} {
		b.Run(tc.name, func(b *testing.B) {
			s := &Store{config: StoreConfig{Logger: slog.New(slog.NewJSONHandler(tc.w, nil))}}
			ctx := context.Background()
			for b.Loop() {
				s.logOutcome(ctx, out)
			}
		})
	}
}
