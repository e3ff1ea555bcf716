package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// createMany creates the schedules in one transaction (a savepoint each),
// enabled, of the sweep kind unless they name another.
func (f *schedulerFixture) createMany(t testing.TB, scheds []Schedule) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), f.db.Pool, func(tx pgx.Tx) error {
		for _, s := range scheds {
			if s.Kind == "" {
				s.Kind = attendance.SweepKind
			}
			s.Enabled = true
			if _, err := f.store.Create(context.Background(), tx, s); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
}

// jobsBySchedule returns, for every schedule, the slots of its jobs by job
// id, and counts the slots that have more than one job.
func (f *schedulerFixture) jobsBySchedule(t *testing.T) (map[string][]string, int) {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(),
		`SELECT metadata->>'schedule', metadata->>'slot' FROM river_job ORDER BY id`)
	require.NoError(t, err)
	jobs := map[string][]string{}
	perSlot := map[[2]string]int{}
	var name, slot string
	_, err = pgx.ForEachRow(rows, []any{&name, &slot}, func() error {
		jobs[name] = append(jobs[name], slot)
		perSlot[[2]string{name, slot}]++
		return nil
	})
	require.NoError(t, err)
	doubled := 0
	for _, n := range perSlot {
		if n > 1 {
			doubled++
		}
	}
	return jobs, doubled
}

// TestSchedulerBatchExactlyOnce: 300 schedules due at the same instants,
// interval and cron, taken in batches of 40 by two schedulers on two
// pools, each passing from two goroutines at once, through four slots:
// every slot of every schedule has exactly one job, and each batch's
// compare-and-set and slot claims leave nothing doubled.
func TestSchedulerBatchExactlyOnce(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{PassBatch: 40})
	f.setNow(base.Add(-time.Second))
	const n = 300
	scheds := make([]Schedule, n)
	for i := range scheds {
		scheds[i] = Schedule{Name: fmt.Sprintf("s%03d", i), Every: time.Minute, Overlap: OverlapAllow}
		switch i % 3 {
		case 1:
			scheds[i].Every, scheds[i].Cron, scheds[i].TimeZone = 0, "* * * * *", "UTC"
		case 2:
			// OverlapSkip, its jobs completed before each slot below.
			scheds[i].Overlap = OverlapSkip
		}
	}
	f.createMany(t, scheds)

	poolB, err := pgxpool.New(ctx, f.db.URL)
	require.NoError(t, err)
	defer poolB.Close()
	other, err := NewScheduler(poolB, f.store)
	require.NoError(t, err)

	const slots = 4
	var enqueued atomic.Int64
	for i := range slots {
		slot := base.Add(time.Duration(i) * time.Minute)
		_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE state = 'available'`)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for _, s := range []*Scheduler{f.sched, other, f.sched, other} {
			wg.Go(func() {
				for _, now := range []time.Time{slot, slot, slot.Add(500 * time.Millisecond)} {
					res, err := s.runPass(ctx, now)
					if err != nil {
						t.Errorf("pass at %s: %v", now, err)
						return
					}
					if res.Failed != 0 {
						t.Errorf("pass at %s: %d schedules failed", now, res.Failed)
					}
					enqueued.Add(int64(res.Enqueued))
				}
			})
		}
		wg.Wait()
	}

	jobs, doubled := f.jobsBySchedule(t)
	require.Zero(t, doubled, "no slot has two jobs")
	require.Len(t, jobs, n)
	want := slotStrings(base, time.Minute, 0, slots-1)
	for _, s := range scheds {
		require.Equal(t, want, jobs[s.Name], "%s: one job per slot, none missing", s.Name)
	}
	require.Equal(t, int64(n*slots), enqueued.Load())
	var runs, skips, misses, slotRows int64
	require.NoError(t, f.db.Pool.QueryRow(ctx, `SELECT sum(total_run_count), sum(skipped_count), sum(missed_count),
		(SELECT count(*) FROM wasso_schedule_slot) FROM wasso_schedule`).Scan(&runs, &skips, &misses, &slotRows))
	require.Equal(t, []int64{n * slots, 0, 0, n * slots}, []int64{runs, skips, misses, slotRows})
	var wrongNext int
	require.NoError(t, f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_schedule WHERE next_run_at <> $1`,
		base.Add(slots*time.Minute)).Scan(&wrongNext))
	require.Zero(t, wrongNext)
}

// countingInserter counts the InsertManyTx calls of the inserter it wraps.
type countingInserter struct {
	Inserter
	inserts atomic.Int64
}

func (c *countingInserter) InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	c.inserts.Add(1)
	return c.Inserter.InsertManyTx(ctx, tx, params)
}

// TestSchedulerBatchBrokenSchedule: one schedule among 200 due at once
// names a kind the client does not work, so River refuses its batch's
// insert. The others are enqueued in the same pass, the broken one is
// backed off and logged as before, and finding it took a few dozen
// transactions, not one per schedule.
func TestSchedulerBatchBrokenSchedule(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var logs wassotest.SyncBuffer
	f := newSchedulerFixture(t, StoreConfig{
		Kinds:  []Kind{NewKind(attendance.SweepArgs{}), NewKind(attendance.SettleEventArgs{})},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	// A client that works the sweep only: River refuses to insert a
	// settle_event job.
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[attendance.SweepArgs]) error { return nil }))
	client, err := river.NewClient(riverpgxv5.New(f.db.Pool), &river.Config{Schema: f.db.Schema, Workers: workers})
	require.NoError(t, err)
	counter := &countingInserter{Inserter: client}
	f.store.SetInserter(counter)

	f.setNow(base.Add(-time.Second))
	const n = 200
	scheds := make([]Schedule, 0, n+1)
	for i := range n {
		scheds = append(scheds, Schedule{Name: fmt.Sprintf("fine-%03d", i), Every: time.Minute})
		if i == n/3 {
			scheds = append(scheds, Schedule{Name: "broken", Kind: attendance.SettleEventKind,
				Args: []byte(`{"event_id": 1}`), Every: time.Minute})
		}
	}
	f.createMany(t, scheds)

	res := f.pass(t, base)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, n, res.Enqueued)
	require.Equal(t, n, res.Schedules)
	t.Logf("%d InsertManyTx calls to enqueue %d schedules around a broken one", counter.inserts.Load(), n)
	require.Less(t, counter.inserts.Load(), int64(30), "halving, not one transaction per schedule")
	jobs, doubled := f.jobsBySchedule(t)
	require.Zero(t, doubled)
	require.Len(t, jobs, n)
	for i := range n {
		require.Equal(t, []string{FormatSlot(base)}, jobs[fmt.Sprintf("fine-%03d", i)])
	}
	require.Empty(t, jobs["broken"])
	broken := f.get(t, "broken")
	require.Equal(t, base, broken.NextRunAt, "left as it was")
	require.Zero(t, broken.TotalRunCount)
	require.Equal(t, 1, strings.Count(logs.String(), "schedule failed; retrying later"))
	require.Contains(t, logs.String(), "schedule=broken")
	require.Equal(t, n, strings.Count(logs.String(), "schedule enqueued job"))

	// Within the backoff, the broken one is left out.
	res = f.pass(t, base.Add(10*time.Second))
	require.Zero(t, res.Failed)
	require.Zero(t, res.Schedules)

	// Once it is disabled, the others' next slots go in one batch.
	_, err = f.store.Disable(ctx, f.db.Pool, "broken")
	require.NoError(t, err)
	before := counter.inserts.Load()
	res = f.pass(t, base.Add(time.Minute))
	require.Zero(t, res.Failed)
	require.Equal(t, n, res.Schedules)
	require.Zero(t, res.Enqueued, "overlap skip: the first jobs have not run")
	require.Equal(t, n, res.Skipped)
	require.Equal(t, before, counter.inserts.Load(), "nothing to insert")
	_, err = f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now()`)
	require.NoError(t, err)
	res = f.pass(t, base.Add(2*time.Minute))
	require.Equal(t, n, res.Enqueued)
	require.Equal(t, before+1, counter.inserts.Load(), "one batch")
}

// TestSchedulerBatchCompareAndSetMiss: a schedule whose compare-and-set
// misses gets no job, and does not cost the others theirs. A miss cannot
// happen to a locked row; a trigger that leaves the row of "raced"
// unchanged stands in for one.
func TestSchedulerBatchCompareAndSetMiss(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.createMany(t, []Schedule{
		{Name: "a", Every: time.Minute}, {Name: "raced", Every: time.Minute}, {Name: "z", Every: time.Minute},
	})
	_, err := f.db.Pool.Exec(ctx, `
CREATE FUNCTION keep_raced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.name = 'raced' AND NEW.next_run_at IS DISTINCT FROM OLD.next_run_at THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER keep_raced BEFORE UPDATE ON wasso_schedule FOR EACH ROW EXECUTE FUNCTION keep_raced();`)
	require.NoError(t, err)

	res := f.pass(t, base)
	require.Zero(t, res.Failed, "a race is not a failure")
	require.Equal(t, 2, res.Enqueued)
	jobs, _ := f.jobsBySchedule(t)
	require.Equal(t, map[string][]string{"a": {FormatSlot(base)}, "z": {FormatSlot(base)}}, jobs)
	slots, err := f.store.Slots(ctx, f.db.Pool, "raced", 0)
	require.NoError(t, err)
	require.Empty(t, slots, "its slot claim rolled back with its job")
}

// TestSchedulerPassPlans: over 10,000 schedules and their slots, the
// statements of the loop and of a batch read indexes, never a whole
// table, with statistics or without: the idle poll and the batch select
// the first entries of wasso_schedule_next_run_at_idx, and the batch's
// joins look rows up by primary key. So an idle pass costs the same over 10 schedules as over
// 10,000 (BenchmarkIdlePass), and a busy one grows with its batches.
func TestSchedulerPassPlans(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 10_000
	f := newSchedulerFixture(t, StoreConfig{})
	f.setNow(base.Add(-time.Second))
	f.create(t, Schedule{Name: "bench-00000", Every: time.Minute, StartAt: base})
	_, err := seed.CloneSchedule(ctx, f.db.Pool, "bench-00000", n-1, "bench-")
	require.NoError(t, err)
	explain := func(db DB, sql string, args ...any) string {
		t.Helper()
		rows, err := db.Query(ctx, "EXPLAIN "+sql, args...)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}

	// Written in bulk a moment ago, the table has no statistics: the
	// planner would read and sort every due row for each batch.
	err = pgx.BeginFunc(ctx, f.db.Pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, batchPlanSQL)
		require.NoError(t, err)
		plan := explain(tx, dueBatchSQL, base, []string{}, PassBatchDefault)
		require.Contains(t, plan, "Index Scan using wasso_schedule_next_run_at_idx", plan)
		require.NotContains(t, plan, "Sort", plan)
		return nil
	})
	require.NoError(t, err)

	res, err := f.sched.runPass(ctx, base)
	require.NoError(t, err)
	require.Equal(t, n, res.Enqueued)
	vacuum(t, f)

	names := make([]string, 500)
	slots := make([]time.Time, len(names))
	nexts := make([]*time.Time, len(names))
	ids := make([]int64, len(names))
	flags := make([]bool, len(names))
	for i := range names {
		names[i] = fmt.Sprintf("bench-%05d", i*17)
		slots[i] = base.Add(time.Minute)
		nexts[i] = &slots[i]
		ids[i] = int64(i + 1)
		flags[i] = true
	}
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	plan := func(sql string, args ...any) string {
		t.Helper()
		return explain(tx, sql, args...)
	}
	for _, tc := range []struct {
		name, plan, index string
	}{
		{"idle poll", plan(nextRunSQL, []string{}), "wasso_schedule_next_run_at_idx"},
		{"idle pass", plan(dueBatchSQL, base, []string{}, PassBatchDefault), "wasso_schedule_next_run_at_idx"},
	} {
		require.Contains(t, tc.plan, tc.index, "%s:\n%s", tc.name, tc.plan)
		require.NotContains(t, tc.plan, "Seq Scan", "%s:\n%s", tc.name, tc.plan)
	}
	_, err = tx.Exec(ctx, batchPlanSQL)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, plan, index string
	}{
		{"batch select", plan(dueBatchSQL, base.Add(time.Minute), []string{"bench-00001"}, PassBatchDefault), "wasso_schedule_next_run_at_idx"},
		{"taken slots", plan(takenSlotsSQL, names, slots), "wasso_schedule_slot_pkey"},
		{"advance", plan(advanceBatchSQL, names, slots, nexts, flags, nexts, ids, ids, ids, ids, base, make([]*time.Time, len(names))), "wasso_schedule_pkey"},
	} {
		require.Contains(t, tc.plan, tc.index, "%s:\n%s", tc.name, tc.plan)
		require.NotContains(t, tc.plan, "Seq Scan", "%s:\n%s", tc.name, tc.plan)
	}
}
