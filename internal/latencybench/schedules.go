package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// runPoolSize is the pool wasso-runner run opens with the defaults: its
// workers (4 default, 4 exact), the sweep's extra parallel connections
// (3) and 6 more.
const runPoolSize = 17

// benchSchedulePrefix names the schedules of -schedules.
const benchSchedulePrefix = "bench-"

// scheduleResult is one -schedules run.
type scheduleResult struct {
	via        string
	created    time.Duration // writing the N schedules
	first      time.Time     // the first slot
	slots      []*slotResult
	doubled    int // (schedule, slot) pairs with more than one job
	unobserved int // jobs the observer missed (their created_at is used)
	runs       int64
	skips      int64
	misses     int64
	problem    error
}

type slotResult struct {
	slot                time.Time
	jobs                int
	visible, created    []time.Duration // first poll that sees the job, created_at; minus the slot
	firstSeen, lastSeen time.Time
	worked              int           // jobs completed by the end of the run
	workedBy            time.Duration // the last finalized_at of the slot's jobs minus the slot
}

// runSchedules is the -schedules mode: o.schedules stored schedules of
// attendance.sweep, every o.every, all due at the same instants, run by
// one runner with the defaults while it works their jobs; for o.slots
// slots, the latency from each slot to its jobs.
func runSchedules(ctx context.Context, o options, out io.Writer) error {
	var results []*scheduleResult
	var failed error
	for _, via := range o.via {
		fmt.Fprintf(os.Stderr, "run: %d schedules every %s, %d slots, 1 runner %s ...\n", o.schedules, o.every, o.slots, via)
		res, err := runSchedulesOnce(ctx, o, via)
		if err != nil {
			return fmt.Errorf("%s: %w", via, err)
		}
		if res.problem != nil {
			failed = errors.Join(failed, fmt.Errorf("%s: %w", via, res.problem))
		}
		results = append(results, res)
	}
	printSchedules(out, o, results)
	return failed
}

func runSchedulesOnce(ctx context.Context, o options, via string) (*scheduleResult, error) {
	db, cleanup := wassotest.ExampleDB()
	defer cleanup()
	res := &scheduleResult{via: via}

	// The runner: a River client built by NewClient with the defaults, on
	// a pool set up as wasso-runner run sets up its own (its size,
	// statements sent unnamed), logging every job enqueued at Info through
	// a JSON handler as the runner does (to io.Discard: the cost of each
	// line is in, not the terminal's); or a wasso-runner run process at
	// --log-level info.
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.binary != "" {
		stop, err := startProcesses(ctx, o, db, 1, via, "info")
		if err != nil {
			return nil, err
		}
		defer stop()
	} else {
		cfg, err := pgxpool.ParseConfig(db.URL)
		if err != nil {
			return nil, err
		}
		cfg.MaxConns = runPoolSize
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		client, err := wassoriver.NewClient(pool, wassoriver.Config{Schema: db.Schema, Logger: logger})
		if err != nil {
			return nil, err
		}
		if err := client.Start(ctx); err != nil {
			return nil, err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = client.Stop(stopCtx)
		}()
	}
	// Wait until the runner leads and has seeded the sweep schedule, so
	// that its loop runs.
	for {
		var seeded bool
		if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_leader) AND
			EXISTS (SELECT 1 FROM wasso_schedule WHERE name = $1)`, wassoriver.SweepScheduleName).Scan(&seeded); err != nil {
			return nil, err
		}
		if seeded {
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}

	// The schedules: one through the store, copied N-1 times in one
	// statement; all share the first slot, a whole second o.lead ahead.
	store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds()})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res.first = start.Truncate(time.Second).Add(o.lead)
	template := fmt.Sprintf("%s%05d", benchSchedulePrefix, 0)
	if _, err := store.Create(ctx, db.Pool, schedule.Schedule{
		Name: template, Kind: attendance.SweepKind, Every: o.every, StartAt: res.first, Enabled: true,
		Overlap: schedule.OverlapPolicy(o.overlap), Description: "latencybench -schedules",
	}); err != nil {
		return nil, err
	}
	if o.schedules > 1 {
		if _, err := seed.CloneSchedule(ctx, db.Pool, template, o.schedules-1, benchSchedulePrefix); err != nil {
			return nil, err
		}
	}
	res.created = time.Since(start)
	if time.Now().After(res.first.Add(-time.Second)) {
		return nil, fmt.Errorf("writing %d schedules took %s: raise -lead (%s)", o.schedules, res.created, o.lead)
	}

	// The observer: every o.poll, the jobs of the schedules committed
	// since, each recorded with the database's now() of the first poll
	// that sees it (an upper bound of its commit).
	obsCfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		return nil, err
	}
	obsCfg.MaxConns = 2
	obsPool, err := pgxpool.NewWithConfig(ctx, obsCfg)
	if err != nil {
		return nil, err
	}
	defer obsPool.Close()
	type seen struct {
		slot, visible, created time.Time
	}
	var (
		obsMu   sync.Mutex
		jobs    = map[int64]seen{}
		obsErr  error
		obsDone = make(chan struct{})
	)
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	go func() {
		defer close(obsDone)
		// Batches commit in parallel, so a job may become visible after
		// one with a higher id. Every id up to low is accounted for, and
		// above holds the ids seen above it; each poll reads only the
		// ranges not seen yet, the gaps between them and what lies beyond
		// the highest (range scans of the primary key: a poll costs the
		// rows it finds). low moves up over the ids seen, and over a gap
		// that stays open for gapTimeout (ids of a transaction that rolled
		// back).
		const gapTimeout = 3 * time.Second
		var low int64
		above := map[int64]bool{}
		var gapSince time.Time
		for obsCtx.Err() == nil {
			ids := slices.Sorted(maps.Keys(above))
			where := fmt.Sprintf("id > %d", low)
			if len(ids) > 0 {
				ranges := []string{fmt.Sprintf("id > %d", ids[len(ids)-1])}
				prev := low
				for _, id := range ids {
					if id > prev+1 {
						ranges = append(ranges, fmt.Sprintf("(id > %d AND id < %d)", prev, id))
					}
					prev = id
				}
				where = strings.Join(ranges, " OR ")
			}
			rows, err := obsPool.Query(obsCtx, `SELECT id, kind = $1 AND metadata->>'schedule' LIKE $2,
				(metadata->>'slot')::timestamptz, created_at, now() FROM river_job WHERE `+where,
				attendance.SweepKind, benchSchedulePrefix+"%")
			if err == nil {
				var id int64
				var bench bool
				var slot, created, now *time.Time
				obsMu.Lock()
				_, err = pgx.ForEachRow(rows, []any{&id, &bench, &slot, &created, &now}, func() error {
					above[id] = true
					if _, ok := jobs[id]; !ok && bench {
						jobs[id] = seen{slot: *slot, visible: *now, created: *created}
					}
					return nil
				})
				obsMu.Unlock()
				from := low
				for above[low+1] {
					delete(above, low+1)
					low++
				}
				switch {
				case len(above) == 0 || low != from:
					gapSince = time.Time{}
				case gapSince.IsZero():
					gapSince = time.Now()
				case time.Since(gapSince) > gapTimeout:
					// A gap that stays: skip it.
					low = slices.Min(slices.Collect(maps.Keys(above))) - 1
					for above[low+1] {
						delete(above, low+1)
						low++
					}
					gapSince = time.Time{}
				}
			}
			if err != nil {
				if obsCtx.Err() == nil {
					obsMu.Lock()
					obsErr = err
					obsMu.Unlock()
				}
				return
			}
			_ = sleep(obsCtx, o.poll)
		}
	}()

	// Wait for each slot's jobs, or the grace period after it.
	last := res.first.Add(time.Duration(o.slots-1) * o.every)
	for k := range o.slots {
		slot := res.first.Add(time.Duration(k) * o.every)
		giveUp := slot.Add(o.grace)
		if next := slot.Add(o.every - time.Second); k < o.slots-1 && next.Before(giveUp) {
			giveUp = next
		}
		for {
			obsMu.Lock()
			n, failed := 0, obsErr != nil
			for _, j := range jobs {
				if j.slot.Equal(slot) {
					n++
				}
			}
			obsMu.Unlock()
			if failed || n >= o.schedules || time.Now().After(giveUp) {
				break
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return nil, err
			}
		}
		if k < o.slots-1 {
			fmt.Fprintf(os.Stderr, "  slot %d done, next at %s\n", k+1, res.first.Add(time.Duration(k+1)*o.every).Format(time.TimeOnly))
		}
	}
	// Let the workers finish the last slot's jobs, up to the grace.
	for time.Now().Before(last.Add(o.grace)) {
		var left int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND finalized_at IS NULL`, attendance.SweepKind).Scan(&left); err != nil {
			return nil, err
		}
		if left == 0 {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	stopObs()
	<-obsDone
	if obsErr != nil {
		return nil, fmt.Errorf("observer: %w", obsErr)
	}

	// Every job, by slot, from the table: those the observer missed count
	// with their created_at, and flag.
	rows, err := db.Pool.Query(ctx, `SELECT id, (metadata->>'slot')::timestamptz, created_at, finalized_at,
			state = 'completed'
		FROM river_job WHERE kind = $1 AND metadata->>'schedule' LIKE $2`, attendance.SweepKind, benchSchedulePrefix+"%")
	if err != nil {
		return nil, err
	}
	bySlot := map[time.Time]*slotResult{}
	for k := range o.slots {
		slot := res.first.Add(time.Duration(k) * o.every)
		bySlot[slot] = &slotResult{slot: slot}
		res.slots = append(res.slots, bySlot[slot])
	}
	var id int64
	var slot, created time.Time
	var finalized *time.Time
	var completed bool
	_, err = pgx.ForEachRow(rows, []any{&id, &slot, &created, &finalized, &completed}, func() error {
		s := bySlot[slot]
		if s == nil {
			return nil // a slot after the run
		}
		s.jobs++
		s.created = append(s.created, created.Sub(slot))
		if j, ok := jobs[id]; ok {
			s.visible = append(s.visible, j.visible.Sub(slot))
			if s.firstSeen.IsZero() || j.visible.Before(s.firstSeen) {
				s.firstSeen = j.visible
			}
			s.lastSeen = maxTime(s.lastSeen, j.visible)
		} else {
			res.unobserved++
			s.visible = append(s.visible, created.Sub(slot))
		}
		if completed {
			s.worked++
		}
		if finalized != nil {
			s.workedBy = max(s.workedBy, finalized.Sub(slot))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// One snapshot for the jobs and the counters: the runner still runs.
	var jobsTotal int64 // of every slot, measured or not
	err = db.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM river_job WHERE kind = $1 AND metadata->>'schedule' LIKE $2
		    GROUP BY metadata->>'schedule', metadata->>'slot' HAVING count(*) > 1) d),
		(SELECT count(*) FROM river_job WHERE kind = $1 AND metadata->>'schedule' LIKE $2),
		sum(total_run_count), sum(skipped_count), sum(missed_count)
		FROM wasso_schedule WHERE name LIKE $2`, attendance.SweepKind, benchSchedulePrefix+"%").
		Scan(&res.doubled, &jobsTotal, &res.runs, &res.skips, &res.misses)
	if err != nil {
		return nil, err
	}
	switch {
	case res.doubled > 0:
		res.problem = fmt.Errorf("%d slots have more than one job", res.doubled)
	case jobsTotal != res.runs:
		res.problem = fmt.Errorf("%d jobs, but the schedules count %d runs", jobsTotal, res.runs)
	case res.slots[0].jobs < o.schedules:
		res.problem = fmt.Errorf("the first slot has %d jobs of %d", res.slots[0].jobs, o.schedules)
	}
	return res, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func printSchedules(out io.Writer, o options, results []*scheduleResult) {
	fmt.Fprintf(out, "\n-schedules: %d schedules of %s every %s (missed once, overlap %s), all due at the same instants; 1 runner, defaults\n",
		o.schedules, attendance.SweepKind, o.every, o.overlap)
	fmt.Fprintf(out, "latency from each slot to its jobs: committed (first %s poll that sees the job) and created_at (the insert's clock)\n\n", o.poll)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "via\tslot\tjobs\tp50\tp99\tmax\tcreated p50\tcreated p99\tcreated max\tfirst seen\tjobs/s\tworked\tall worked by\t")
	for _, r := range results {
		for k, s := range r.slots {
			rate := "-"
			if span := s.lastSeen.Sub(s.firstSeen); s.jobs > 1 && span > 0 {
				rate = fmt.Sprintf("%.0f", float64(s.jobs-1)/span.Seconds())
			}
			workedBy := "-"
			if s.worked == s.jobs && s.jobs > 0 {
				workedBy = ms(s.workedBy)
			}
			fmt.Fprintf(tw, "%s\t%d (%s)\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n",
				r.via, k+1, s.slot.UTC().Format(time.TimeOnly), s.jobs,
				ms(pct(s.visible, 50)), ms(pct(s.visible, 99)), ms(pct(s.visible, 100)),
				ms(pct(s.created, 50)), ms(pct(s.created, 99)), ms(pct(s.created, 100)),
				ms(s.firstSeen.Sub(s.slot)), rate, s.worked, workedBy)
		}
	}
	_ = tw.Flush()
	for _, r := range results {
		fmt.Fprintf(out, "%s: schedules written in %s; runs %d, overlap skips %d, missed %d; slots with two jobs: %d",
			r.via, r.created.Round(time.Millisecond), r.runs, r.skips, r.misses, r.doubled)
		if r.unobserved > 0 {
			fmt.Fprintf(out, "; %d jobs not seen by the observer (their created_at counted)", r.unobserved)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "\njobs/s = jobs seen per second between the first and the last seen; worked = jobs completed by the end of the run,")
	fmt.Fprintln(out, "all worked by = the last one's finalized_at, once all are (-: not all were).")
	fmt.Fprintln(out, "A slot's jobs are skipped (overlap skip) while the same schedule's job of the slot before is not finished.")
}
