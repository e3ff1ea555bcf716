// Command latencybench measures how late events are settled: the time from
// each event's deadline to the commit of its settlement, with one runner
// and with three, on the Postgres the tests use (WASSO_TEST_DATABASE_URL,
// else 127.0.0.1:5432), in a fresh schema per run; with -schedules, how
// late the jobs of many stored schedules due at one instant are enqueued.
//
//	go run ./internal/latencybench                 # 500 events over 2 minutes, 1 and 3 runners
//	go run ./internal/latencybench -runners 3 -events 100 -spread 30s
//	go build -o /tmp/wasso-runner ./runner/cmd/wasso-runner && go run ./internal/latencybench -processes /tmp/wasso-runner
//	go run ./internal/latencybench -processes /tmp/wasso-runner -runners 1 -events 100 -spread 30s -via direct,pgbouncer,pgbouncer+listen
//
// With -via, each run's runner processes reach Postgres directly, through
// PgBouncer in transaction mode (internal/pgbouncer), or through it with
// database.listen_url set to the direct connection: the three side by
// side.
//
// Each run starts the runners (River clients built by wassoriver.NewClient
// with production defaults, each on a pool of its own, in this process:
// three processes would differ only in scheduling), waits until one is
// leader, then writes the events while the runners work: each event is
// written write-ahead before its deadline, alternately through the API (an
// insert and attendance.ScheduleEventTx in one transaction, from an
// insert-only River client, as the Go backend does) and with plain SQL (an
// insert only, as the Django backend does, left to the leader's discovery
// loop). Deadlines are spread at random over the spread, at microsecond
// instants, and every club has members to mark absent, so each settlement
// also enqueues its notice.
//
// "Committed" is measured from outside the runners: an observer polls
// wasso_settlement every few milliseconds and records, for each event, the
// database's now() of the first poll whose snapshot holds the settlement.
// A snapshot only holds committed rows, so that instant is an upper bound
// of the commit, at most one poll late. When the server runs with
// track_commit_timestamp = on, the exact commit time
// (pg_xact_commit_timestamp) is reported too. Deadlines and both clocks
// are the database's; nothing is timed with the Go clock.
//
// With -burst, every event shares one deadline (19:00 in every club), and
// all are written up front with plain SQL, as the Django backend does, so
// that the leader's discovery plans their jobs; the settle_event jobs then
// settle them in batches (attendance.BurstLimitDefault). With -reference
// as well, the same number of twin events (same clubs' sizes, no rows)
// are settled afterwards, in the same run, by one set-based settlement
// (SettleDueTx over all of them: one transaction, one claim and one apply
// statement), timed from its BEGIN to its COMMIT; the table shows the
// ratio of the burst's latency to it.
//
//	go run ./internal/latencybench -burst -events 1000 -members 10 -runners 1
//	go run ./internal/latencybench -burst -reference -events 100 -clubs 1 -members 1000 -runners 1
//
// With -schedules N, there are no events: N stored schedules of
// attendance.sweep (one written through the schedule store, copied N-1
// times in one statement), every -every, all due at the same instants
// from -lead ahead, are run by one runner (in process, or one -processes
// process, as -via says) with the defaults while it works their jobs. For
// each of -slots slots the table shows the latency from the slot to its
// jobs: committed (the first observer poll of river_job that sees the
// job) and created_at (the insert's clock), p50, p99 and max, and when
// the workers had run them all.
//
//	go run ./internal/latencybench -schedules 10000
//	go run ./internal/latencybench -schedules 10000 -processes /tmp/wasso-runner -slots 3
//
// A run fails (exit status 1) if any event is settled twice, any member
// got two rows for one event, or an event is not settled within the grace
// period after the last deadline; with -schedules, if a slot has two jobs
// or the first slot's jobs are not all enqueued within the grace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/pgbouncer"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

type options struct {
	events     int
	spread     time.Duration
	lead       time.Duration
	writeAhead time.Duration
	runners    []int
	binary     string
	clubs      int
	members    int
	poll       time.Duration
	grace      time.Duration
	seed       uint64
	verbose    bool
	exactPoll  time.Duration
	burst      bool
	reference  bool
	via        []string
	schedules  int
	every      time.Duration
	slots      int
	overlap    string
}

// The paths -via can name, with -processes.
const (
	viaDirect        = "direct"
	viaBouncer       = "pgbouncer"
	viaBouncerListen = "pgbouncer+listen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "latencybench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("latencybench", flag.ContinueOnError)
	var o options
	var runners, via string
	fs.IntVar(&o.events, "events", 500, "events per run")
	fs.DurationVar(&o.spread, "spread", 2*time.Minute, "deadlines are spread over this long")
	fs.DurationVar(&o.lead, "lead", 10*time.Second, "time from the start of writing to the first possible deadline")
	fs.DurationVar(&o.writeAhead, "write-ahead", 5*time.Second, "each event is written this long before its deadline")
	fs.StringVar(&runners, "runners", "1,3", "comma-separated runner counts, one run each")
	fs.IntVar(&o.clubs, "clubs", 50, "clubs (each one generation)")
	fs.IntVar(&o.members, "members", 8, "members per club")
	fs.DurationVar(&o.poll, "poll", 5*time.Millisecond, "observer poll interval")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "how long after the last deadline every event must be settled")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed for the deadlines")
	fs.BoolVar(&o.verbose, "v", false, "log the runners' warnings")
	fs.StringVar(&o.binary, "processes", "", "a wasso-runner binary: run the runners as `run` processes of it instead of clients in this process")
	fs.DurationVar(&o.exactPoll, "exact-poll", 0, "wassoriver.Config.ExactPollInterval (0: its default)")
	fs.BoolVar(&o.burst, "burst", false, "one deadline for every event, all written up front with plain SQL")
	fs.BoolVar(&o.reference, "reference", false, "with -burst: also time one set-based settlement of as many twin events")
	fs.IntVar(&o.schedules, "schedules", 0, "instead of events: this many stored schedules of attendance.sweep, all due at the same instants, run by one runner")
	fs.DurationVar(&o.every, "every", time.Minute, "with -schedules: the schedules' interval")
	fs.IntVar(&o.slots, "slots", 2, "with -schedules: how many slots to measure")
	fs.StringVar(&o.overlap, "overlap", "skip", "with -schedules: the schedules' overlap policy, skip (the default: no job while the slot before's runs) or allow")
	fs.StringVar(&via, "via", viaDirect, "with -processes, comma-separated paths from the runners to Postgres, one run each: direct, pgbouncer (PgBouncer in transaction mode), pgbouncer+listen (the same, with database.listen_url direct)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for v := range strings.SplitSeq(via, ",") {
		v = strings.TrimSpace(v)
		if v != viaDirect && v != viaBouncer && v != viaBouncerListen {
			return fmt.Errorf("-via %q: want direct, pgbouncer or pgbouncer+listen", v)
		}
		if v != viaDirect && o.binary == "" {
			return fmt.Errorf("-via %s needs -processes", v)
		}
		o.via = append(o.via, v)
	}
	for f := range strings.SplitSeq(runners, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-runners %q: want positive counts", runners)
		}
		o.runners = append(o.runners, n)
	}
	if o.reference && !o.burst {
		return errors.New("-reference needs -burst")
	}
	if o.schedules > 0 {
		if o.slots < 1 || o.every < time.Second {
			return errors.New("-schedules needs -slots of at least 1 and -every of at least 1s")
		}
		if o.overlap != "skip" && o.overlap != "allow" {
			return fmt.Errorf("-overlap %q: want skip or allow", o.overlap)
		}
		if o.schedules > 100_000 {
			return errors.New("-schedules: at most 100000")
		}
		return runSchedules(ctx, o, out)
	}
	if o.writeAhead >= o.lead {
		return fmt.Errorf("-write-ahead %s must be shorter than -lead %s", o.writeAhead, o.lead)
	}

	var results []*result
	var failed error
	for _, n := range o.runners {
		for _, via := range o.via {
			fmt.Fprintf(os.Stderr, "run: %d runner(s) %s, %d events over %s ...\n", n, via, o.events, o.spread)
			res, err := runOnce(ctx, o, n, via)
			if err != nil {
				return fmt.Errorf("%d runner(s) %s: %w", n, via, err)
			}
			if res.problem != nil {
				failed = errors.Join(failed, fmt.Errorf("%d runner(s) %s: %w", n, via, res.problem))
			}
			results = append(results, res)
		}
	}
	printTable(out, o, results)
	return failed
}

type result struct {
	runners     int
	via         string
	api, sql    int
	settled     int
	twice       int
	dupRows     int
	jobSettles  int
	commitExact bool
	visible     []time.Duration // first poll holding the settlement - deadline
	started     []time.Duration // settled_at (the claim statement's clock) - deadline
	committed   []time.Duration // pg_xact_commit_timestamp - deadline, if tracked
	reference   time.Duration   // -reference: BEGIN to COMMIT of one set-based settlement
	refEvents   int
	batches     []int // -burst: batch_events of the jobs that settled something
	problem     error
}

func runOnce(ctx context.Context, o options, runners int, via string) (*result, error) {
	db, cleanup := wassotest.ExampleDB()
	defer cleanup()

	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	newPool := func(max int32) (*pgxpool.Pool, error) {
		cfg, err := pgxpool.ParseConfig(db.URL)
		if err != nil {
			return nil, err
		}
		cfg.MaxConns = max
		return pgxpool.NewWithConfig(ctx, cfg)
	}

	clubs := make([]*seed.Club, o.clubs)
	for i := range clubs {
		var err error
		clubs[i], err = seed.CreateClub(ctx, db.Pool, fmt.Sprintf("Club %d", i), o.members, time.Now())
		if err != nil {
			return nil, err
		}
	}

	// The twins of -reference: as many clubs of the same size, whose
	// events have a deadline older than the runners' lookback, so that
	// only the reference settles them.
	var twins []*seed.Club
	if o.reference {
		twins = make([]*seed.Club, o.clubs)
		for i := range twins {
			var err error
			twins[i], err = seed.CreateClub(ctx, db.Pool, fmt.Sprintf("Twin %d", i), o.members, time.Now().Add(-72*time.Hour))
			if err != nil {
				return nil, err
			}
		}
	}

	// The runners.
	var (
		clients []*wassoriver.Client
		pools   []*pgxpool.Pool
	)
	// The clients stop before their pools close.
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, c := range clients {
			_ = c.Stop(stopCtx)
		}
		for _, p := range pools {
			p.Close()
		}
	}()
	inProcess := runners
	if o.binary != "" {
		stop, err := startProcesses(ctx, o, db, runners, via, "warn")
		if err != nil {
			return nil, err
		}
		defer stop()
		inProcess = 0
	}
	for range inProcess {
		pool, err := newPool(10)
		if err != nil {
			return nil, err
		}
		pools = append(pools, pool)
		client, err := wassoriver.NewClient(pool, wassoriver.Config{Schema: db.Schema, Logger: logger, ExactPollInterval: o.exactPoll})
		if err != nil {
			return nil, err
		}
		if err := client.Start(ctx); err != nil {
			return nil, err
		}
		clients = append(clients, client)
	}
	// Wait until one runner is leader and has started discovery.
	for {
		var leaders int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_leader`).Scan(&leaders); err != nil {
			return nil, err
		}
		if leaders > 0 {
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if err := sleep(ctx, 2*time.Second); err != nil { // discovery starts after River's up-to-1 s stagger
		return nil, err
	}

	// The plan: deadlines at random microsecond instants over the spread.
	rng := rand.New(rand.NewPCG(o.seed, uint64(runners)))
	t0 := time.Now().Add(o.lead)
	deadlines := make([]time.Time, o.events)
	for i := range deadlines {
		deadlines[i] = t0.Add(time.Duration(rng.Int64N(int64(o.spread)))).Truncate(time.Microsecond)
		if o.burst {
			deadlines[i] = t0.Truncate(time.Microsecond)
		}
	}
	slices.SortFunc(deadlines, func(a, b time.Time) int { return a.Compare(b) })
	last := deadlines[len(deadlines)-1]

	var commitTracked bool
	if err := db.Pool.QueryRow(ctx, `SELECT current_setting('track_commit_timestamp') = 'on'`).Scan(&commitTracked); err != nil {
		return nil, err
	}

	// The observer.
	obsPool, err := newPool(2)
	if err != nil {
		return nil, err
	}
	defer obsPool.Close()
	obsCtx, stopObs := context.WithCancel(ctx)
	type seen struct {
		visible, started, committed time.Time
		deadline                    time.Time
	}
	var (
		obsMu   sync.Mutex
		visible = map[int64]seen{}
		obsErr  error
		obsDone = make(chan struct{})
	)
	go func() {
		defer close(obsDone)
		commitExpr := "NULL::timestamptz"
		if commitTracked {
			commitExpr = "pg_xact_commit_timestamp(s.xmin)"
		}
		q := `SELECT s.event_id, s.deadline, s.settled_at, ` + commitExpr + `, now()
		      FROM wasso_settlement s WHERE s.settled_at > $1`
		since := time.Now().Add(-time.Hour)
		for obsCtx.Err() == nil {
			rows, err := obsPool.Query(obsCtx, q, since)
			if err != nil {
				if obsCtx.Err() == nil {
					obsMu.Lock()
					obsErr = err
					obsMu.Unlock()
				}
				return
			}
			var id int64
			var deadline, started, now time.Time
			var committed *time.Time
			maxStarted := since
			_, err = pgx.ForEachRow(rows, []any{&id, &deadline, &started, &committed, &now}, func() error {
				obsMu.Lock()
				if _, ok := visible[id]; !ok {
					s := seen{visible: now, started: started, deadline: deadline}
					if committed != nil {
						s.committed = *committed
					}
					visible[id] = s
				}
				obsMu.Unlock()
				if started.After(maxStarted) {
					maxStarted = started
				}
				return nil
			})
			if err != nil {
				if obsCtx.Err() == nil {
					obsMu.Lock()
					obsErr = err
					obsMu.Unlock()
				}
				return
			}
			// A settlement that started earlier may commit later; keep a
			// margin far longer than any settlement transaction.
			if maxStarted.Add(-5 * time.Second).After(since) {
				since = maxStarted.Add(-5 * time.Second)
			}
			_ = sleep(obsCtx, o.poll)
		}
	}()

	// The writer.
	wPool, err := newPool(4)
	if err != nil {
		stopObs()
		return nil, err
	}
	defer wPool.Close()
	backend, err := river.NewClient(riverpgxv5.New(wPool), &river.Config{
		Schema: db.Schema,
		Hooks:  []rivertype.Hook{&wassoriver.ExactTimeHook{}},
	})
	if err != nil {
		stopObs()
		return nil, err
	}
	res := &result{runners: runners, via: via, commitExact: commitTracked}
	ids := make([]int64, 0, len(deadlines))
	for i, deadline := range deadlines {
		if !o.burst {
			if err := sleepUntil(ctx, deadline.Add(-o.writeAhead)); err != nil {
				stopObs()
				return nil, err
			}
		}
		club := clubs[i%len(clubs)]
		ev := seed.Event{GenerationID: club.GenerationID, Title: fmt.Sprintf("Event %d", i), Start: deadline.Add(-30 * time.Minute), StartMinutes: -10, LateMinutes: 10, FailMinutes: 30}
		var id int64
		if i%2 == 0 && !o.burst {
			err = pgx.BeginFunc(ctx, wPool, func(tx pgx.Tx) error {
				var err error
				if id, err = seed.CreateEvent(ctx, tx, ev, time.Now()); err != nil {
					return err
				}
				_, err = attendance.ScheduleEventTx(ctx, tx, backend, id)
				return err
			})
			res.api++
		} else {
			id, err = seed.CreateEvent(ctx, wPool, ev, time.Now())
			res.sql++
		}
		if err != nil {
			stopObs()
			return nil, fmt.Errorf("write event %d: %w", i, err)
		}
		ids = append(ids, id)
	}

	// Wait for every event, or the grace period.
	giveUp := last.Add(o.grace)
	for {
		obsMu.Lock()
		n, failed := len(visible), obsErr != nil
		obsMu.Unlock()
		if n >= len(ids) || time.Now().After(giveUp) || failed {
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			stopObs()
			return nil, err
		}
	}
	stopObs()
	<-obsDone
	if obsErr != nil {
		return nil, fmt.Errorf("observer: %w", obsErr)
	}
	// Let the notices and completions settle before checking jobs.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}

	for _, id := range ids {
		s, ok := visible[id]
		if !ok {
			continue
		}
		res.settled++
		res.visible = append(res.visible, s.visible.Sub(s.deadline))
		res.started = append(res.started, s.started.Sub(s.deadline))
		if !s.committed.IsZero() {
			res.committed = append(res.committed, s.committed.Sub(s.deadline))
		}
	}
	err = db.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM wasso_settlement WHERE settle_count > 1),
		(SELECT count(*) FROM (SELECT 1 FROM attendances GROUP BY event_id, generation_mapping_id HAVING count(*) > 1) d),
		(SELECT coalesce(sum((metadata -> 'output' ->> 'batch_events')::int),
		                 count(*) FILTER (WHERE (metadata -> 'output' ->> 'settled')::boolean))
		 FROM river_job WHERE kind = 'attendance.settle_event')`).
		Scan(&res.twice, &res.dupRows, &res.jobSettles)
	if err != nil {
		return nil, err
	}
	if o.burst {
		rows, err := db.Pool.Query(ctx, `SELECT (metadata -> 'output' ->> 'batch_events')::int FROM river_job
			WHERE kind = 'attendance.settle_event' AND (metadata -> 'output' ->> 'batch_events')::int > 0 ORDER BY id`)
		if err != nil {
			return nil, err
		}
		if res.batches, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
			return nil, err
		}
	}
	if o.reference {
		if err := referenceRun(ctx, db, o, twins, res); err != nil {
			return nil, fmt.Errorf("reference: %w", err)
		}
	}
	switch {
	case res.settled < len(ids):
		res.problem = fmt.Errorf("%d of %d events not settled %s after the last deadline", len(ids)-res.settled, len(ids), o.grace)
	case res.twice > 0 || res.dupRows > 0:
		res.problem = fmt.Errorf("%d events settled twice, %d duplicate attendance rows", res.twice, res.dupRows)
	}
	return res, nil
}

// referenceRun settles the twins' events, as many as the run's and of the
// same sizes, in one transaction by one set-based settlement, as a sweep
// would with no batch limit, and records its duration from BEGIN to
// COMMIT. It runs after the burst, so the two do not compete for the
// machine.
func referenceRun(ctx context.Context, db *wassotest.DB, o options, twins []*seed.Club, res *result) error {
	deadline := time.Now().Add(-48 * time.Hour).Truncate(time.Microsecond)
	ids := make([]int64, o.events)
	for i := range ids {
		club := twins[i%len(twins)]
		ev := seed.Event{GenerationID: club.GenerationID, Title: fmt.Sprintf("Twin %d", i), Start: deadline.Add(-30 * time.Minute), StartMinutes: -10, LateMinutes: 10, FailMinutes: 30}
		var err error
		if ids[i], err = seed.CreateEvent(ctx, db.Pool, ev, deadline.Add(-time.Hour)); err != nil {
			return err
		}
	}
	start := time.Now()
	var settled *attendance.SettleResult
	err := pgx.BeginTxFunc(ctx, db.Pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		var err error
		settled, err = attendance.SettleDueTx(ctx, tx, attendance.SettleParams{EventIDs: ids, Lookback: 72 * time.Hour})
		return err
	})
	if err != nil {
		return err
	}
	res.reference = time.Since(start)
	res.refEvents = settled.ProcessedEvents
	if settled.ProcessedEvents != len(ids) {
		return fmt.Errorf("settled %d of %d twin events", settled.ProcessedEvents, len(ids))
	}
	return nil
}

func printTable(out io.Writer, o options, results []*result) {
	if o.burst {
		printBurst(out, o, results)
		return
	}
	fmt.Fprintf(out, "\n%d events per run, deadlines spread over %s, half via ScheduleEventTx, half plain SQL (discovered)\n", o.events, o.spread)
	fmt.Fprintf(out, "latency from deadline to committed settlement (upper bound: first %s poll that sees it)\n\n", o.poll)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "runners\tvia\tevents\tapi\tsql\tsettled\tby job\tp50\tp99\tmax\tstart p50\tstart p99\tsettled twice\tdup rows\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n",
			r.runners, r.via, r.api+r.sql, r.api, r.sql, r.settled, r.jobSettles,
			ms(pct(r.visible, 50)), ms(pct(r.visible, 99)), ms(pct(r.visible, 100)),
			ms(pct(r.started, 50)), ms(pct(r.started, 99)), r.twice, r.dupRows)
	}
	_ = tw.Flush()
	for _, r := range results {
		if len(r.committed) > 0 {
			fmt.Fprintf(out, "exact commit time (track_commit_timestamp), %d runner(s): p50 %s p99 %s max %s\n",
				r.runners, ms(pct(r.committed, 50)), ms(pct(r.committed, 99)), ms(pct(r.committed, 100)))
		}
	}
	fmt.Fprintln(out, "\nby job = events settled by settle_event jobs, their own or in their batch (the rest, if any, by the sweep).")
	fmt.Fprintln(out, "start = settled_at, the clock of the settlement's claim statement inside its transaction.")
	fmt.Fprintln(out, "The old Celery task ran every 5 minutes: up to 300 s late.")
}

func printBurst(out io.Writer, o options, results []*result) {
	fmt.Fprintf(out, "\n-burst: %d events sharing one deadline, %d clubs of %d members, written up front with plain SQL (discovered)\n", o.events, o.clubs, o.members)
	fmt.Fprintf(out, "latency from the deadline to committed settlement (upper bound: first %s poll that sees it)\n\n", o.poll)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "runners\tevents\tsettled\tjobs settling\tlargest batch\tp50\tp99\tmax\tstart p50\tstart p99\tsettled twice\tdup rows\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n",
			r.runners, r.api+r.sql, r.settled, len(r.batches), slices.Max(append([]int{0}, r.batches...)),
			ms(pct(r.visible, 50)), ms(pct(r.visible, 99)), ms(pct(r.visible, 100)),
			ms(pct(r.started, 50)), ms(pct(r.started, 99)), r.twice, r.dupRows)
	}
	_ = tw.Flush()
	for _, r := range results {
		fmt.Fprintf(out, "batches (batch_events of each job that settled something), %d runner(s): %v\n", r.runners, r.batches)
		if len(r.committed) > 0 {
			fmt.Fprintf(out, "exact commit time (track_commit_timestamp), %d runner(s): p50 %s p99 %s max %s\n",
				r.runners, ms(pct(r.committed, 50)), ms(pct(r.committed, 99)), ms(pct(r.committed, 100)))
		}
		if r.refEvents > 0 {
			maxLat := pct(r.visible, 100)
			fmt.Fprintf(out, "reference, %d runner(s): one set-based settlement of %d twin events, BEGIN to COMMIT: %s; burst max / reference = %.2fx, burst p99 / reference = %.2fx\n",
				r.runners, r.refEvents, ms(r.reference), float64(maxLat)/float64(r.reference), float64(pct(r.visible, 99))/float64(r.reference))
		}
	}
	fmt.Fprintln(out, "\nstart = settled_at, the clock of the settlement's claim statement inside its transaction.")
}

// pct returns the p-th percentile (nearest rank).
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sleepUntil(ctx context.Context, at time.Time) error {
	if d := time.Until(at); d > 0 {
		return sleep(ctx, d)
	}
	return nil
}

// startProcesses starts n `wasso-runner run` processes on the run's
// schema, logging at logLevel, and returns a func that stops them with
// SIGTERM and waits.
func startProcesses(ctx context.Context, o options, db *wassotest.DB, n int, via, logLevel string) (func(), error) {
	var cmds []*exec.Cmd
	var bouncer *pgbouncer.Bouncer
	stop := func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
		if bouncer != nil {
			bouncer.Stop()
		}
	}
	url := db.URL
	var env []string
	if via != viaDirect {
		var err error
		if bouncer, err = pgbouncer.Start(ctx, db.URL, db.Schema); err != nil {
			return nil, err
		}
		url = bouncer.URL
		if via == viaBouncerListen {
			env = append(env, "WASSO_DATABASE_LISTEN_URL="+db.URL)
		}
	}
	for range n {
		cmd := exec.CommandContext(ctx, o.binary, "run", "--no-http", "--log-level", logLevel,
			"--database-url", url, "--schema", db.Schema)
		cmd.Env = append(os.Environ(), env...)
		if o.exactPoll > 0 {
			cmd.Env = append(cmd.Env, "WASSO_DEADLINES_POLL_INTERVAL="+o.exactPoll.String())
		}
		if o.verbose {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("start %s: %w", o.binary, err)
		}
		cmds = append(cmds, cmd)
	}
	return stop, nil
}
