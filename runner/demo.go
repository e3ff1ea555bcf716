package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/pgtemp"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/migrations"
)

// demoOptions are the demo command's own flags.
type demoOptions struct {
	events          int
	exitWhenSettled bool
	members         int
	spacing         time.Duration
	verbose         bool
}

func (a *app) demoCmd() *cobra.Command {
	opts := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Try the scheduler with zero configuration (a throwaway Postgres, seeded events, River UI)",
		Long: `demo shows the scheduler at work with nothing to configure.

Without a database URL it starts a private Postgres cluster from the
machine's Postgres binaries (installing the postgresql package with apt-get
when they are missing and it runs as root), in a temporary directory on a
free port. It migrates the database, creates the Wasso tables, seeds a club
with events whose check-in deadlines fall in the next minutes, runs a
runner with River UI, prints the URL, and prints each settlement and each
absent notice as it happens, then a summary once every event is settled.
Ctrl-C stops everything and removes the cluster.

Only those lines go to stdout: the runner's structured logs are left out
but for warnings and errors (on stderr), unless --verbose or an explicit
log.level asks for them.

With a database URL it uses that database instead, which must be a scratch
database: it refuses one whose events table holds rows.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDemo(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.events, "events", 4, "number of events to seed")
	f.IntVar(&opts.members, "members", 6, "number of club members to seed")
	f.DurationVar(&opts.spacing, "spacing", 20*time.Second, "time between two events' deadlines; the first is one spacing from now")
	f.String("http-addr", defaultConfig.HTTP.Addr, "HTTP listen address for River UI and metrics; when left at the default and busy, any free port (key http.addr)")
	f.BoolVar(&opts.exitWhenSettled, "exit-when-settled", false, "stop once every seeded event is settled, instead of waiting for Ctrl-C")
	f.BoolVar(&opts.verbose, "verbose", false, "also log what the runner and River do (log.level, info by default) on stderr; without it, and without an explicit log.level, only warnings and errors are logged")
	return cmd
}

func (a *app) runDemo(ctx context.Context, opts demoOptions) error {
	switch {
	case opts.events < 1 || opts.events > 1000:
		return usagef("--events %d: must be between 1 and 1000", opts.events)
	case opts.members < 1 || opts.members > 10000:
		return usagef("--members %d: must be between 1 and 10000", opts.members)
	case opts.spacing < time.Second:
		return usagef("--spacing %s: must be at least 1s", opts.spacing)
	}

	if err := a.cfg.checkHTTPExposure(); err != nil {
		return err
	}
	out := &demoOutput{w: a.stdout, tz: a.cfg.TimeZone, settled: map[int64]demoSettlement{}, noticed: map[int64]bool{}, pending: map[int64][]string{}}
	a.logger = a.demoLogger(opts.verbose, out)
	var tryDB string
	if a.cfg.DatabaseURL == "" {
		out.println("No database configured: starting a private Postgres cluster (removed on exit)...")
		if _, err := pgtemp.FindBinaries(); err != nil {
			// apt-get's output is logged at info, which the demo leaves
			// out unless --verbose: say why the next step may take a while.
			out.println("No Postgres binaries found: trying apt-get install postgresql (a minute or two)...")
		}
		cluster, err := pgtemp.Start(ctx, pgtemp.Options{InstallMissing: true, Logger: a.logger})
		if err != nil {
			if errors.Is(err, pgtemp.ErrNoBinaries) {
				return &ConfigError{Err: fmt.Errorf("demo needs Postgres: %w", err)}
			}
			return fmt.Errorf("demo: start Postgres: %w", err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				a.logger.Error("stop demo cluster", slog.String("error", err.Error()))
				return
			}
			out.println("Removed the Postgres cluster.")
		}()
		a.cfg.DatabaseURL = cluster.URL(pgtemp.Database)
		// The private cluster's URL holds no secret, so it can be printed
		// for the user to try the other commands on.
		tryDB = " --database-url '" + a.cfg.DatabaseURL + "'"
		out.printf("Postgres is up on 127.0.0.1:%d (data in %s)\n", cluster.Port(), cluster.Dir())
	}
	pool, err := a.openPool(ctx, poolOptions{MaxConns: 10})
	if err != nil {
		return err
	}
	defer pool.Close()

	if err := demoCheckScratch(ctx, pool); err != nil {
		return err
	}
	if _, err := migrations.Up(ctx, pool, migrations.Options{Logger: a.logger, Schema: a.cfg.Schema, WithWassoSchema: true}); err != nil {
		return fmt.Errorf("demo: migrate: %w", err)
	}
	out.println("Migrated: River's tables and the Wasso tables are in place.")
	events, err := demoSeed(ctx, pool, opts, time.Now())
	if err != nil {
		return err
	}
	out.printf("Seeded %q: %d members, %d events:\n", demoClubName, opts.members, len(events))
	for _, ev := range events {
		out.printf("  event %d %-18q check-in closes at %s\n", ev.id, ev.title, ev.deadline.In(a.cfg.TimeZone).Format("15:04:05 MST"))
	}
	out.events = events

	// A demo runner sweeps often and serves HTTP on 8080 if that port is
	// free, else on any free port, unless configured otherwise.
	if a.cfg.Source("sweep.interval") == "default" {
		a.cfg.Sweep.Interval = 5 * time.Second
	}
	if a.cfg.Source("http.addr") == "default" {
		if ln, err := net.Listen("tcp", a.cfg.HTTP.Addr); err == nil {
			_ = ln.Close()
		} else {
			a.cfg.HTTP.Addr = "127.0.0.1:0"
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		watchErr = make(chan error, 1)
		watching bool
	)
	err = a.runWith(runCtx, pool, runOptions{OnStarted: func(httpAddr string) {
		if httpAddr != "" {
			out.printf("River UI: http://%s/riverui/   metrics: http://%s/metrics\n", httpAddr, httpAddr)
		}
		var next []string
		if httpAddr != "" {
			next = append(next, "River UI, for the settle and notice jobs: http://"+httpAddr+"/riverui/")
		}
		if tryDB != "" {
			next = append(next, "the CLI, in another terminal: wasso-runner jobs list"+tryDB)
		}
		next = append(next, "the runner's own logs: run the demo again with --verbose")
		out.println("Waiting for deadlines (Ctrl-C to stop)...")
		watching = true
		go func() { watchErr <- a.demoWatch(runCtx, pool, out, opts.exitWhenSettled, next, stop) }()
	}})
	// runWith returns once the runner is stopped; the watcher is stopped
	// too before the last lines, so that they come last.
	stop()
	if watching {
		if werr := <-watchErr; err == nil && werr != nil && !errors.Is(werr, context.Canceled) {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	out.stopped()
	return nil
}

const demoClubName = "Wasso demo club"

type demoEvent struct {
	id       int64
	title    string
	deadline time.Time
}

// demoCheckScratch refuses a database whose events table has rows: the
// demo writes a club, members and events into it.
func demoCheckScratch(ctx context.Context, pool *pgxpool.Pool) error {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('events') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if !exists {
		return nil
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if n > 0 {
		return &ConfigError{Key: "database_url", Err: fmt.Errorf("demo writes demo rows and needs a scratch database, but this one has %d events (run demo without a database URL to use a throwaway Postgres)", n)}
	}
	return nil
}

// demoSeed creates the club, its members and the events, with a mix of
// check-ins already made, in one transaction.
func demoSeed(ctx context.Context, pool *pgxpool.Pool, opts demoOptions, now time.Time) ([]demoEvent, error) {
	var events []demoEvent
	titles := []string{"Morning practice", "Weekly meeting", "Study session", "Friendly match", "Night run"}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		club, err := seed.CreateClub(ctx, tx, demoClubName, opts.members, now)
		if err != nil {
			return err
		}
		const failMinutes = 1
		for i := range opts.events {
			deadline := now.Add(time.Duration(i+1) * opts.spacing).Truncate(time.Second)
			title := titles[i%len(titles)]
			if i >= len(titles) {
				title = fmt.Sprintf("%s #%d", title, i/len(titles)+1)
			}
			id, err := seed.CreateEvent(ctx, tx, seed.Event{
				GenerationID: club.GenerationID,
				Title:        title,
				Start:        deadline.Add(-failMinutes * time.Minute),
				StartMinutes: -10,
				LateMinutes:  0,
				FailMinutes:  failMinutes,
			}, now)
			if err != nil {
				return err
			}
			// A third of the members checked in, one opened the app and
			// is still UNCHECKED, the rest have no row.
			for j, mapping := range club.MappingIDs {
				status := -1
				switch (i + j) % 6 {
				case 0, 3:
					status = attendance.StatusPresent
				case 1:
					status = attendance.StatusUnchecked
				}
				if status >= 0 {
					if _, err := seed.AddAttendance(ctx, tx, id, mapping, status, now); err != nil {
						return err
					}
				}
			}
			events = append(events, demoEvent{id: id, title: title, deadline: deadline})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo: seed: %w", err)
	}
	return events, nil
}

// demoWatch prints each settlement of a seeded event as it commits, and
// the summary once every one is settled: then it stops the demo if
// exitWhenSettled, and else suggests what to try next and goes on
// watching.
func (a *app) demoWatch(ctx context.Context, pool *pgxpool.Pool, out *demoOutput, exitWhenSettled bool, next []string, stop func()) error {
	ids := make([]int64, len(out.events))
	for i, ev := range out.events {
		ids[i] = ev.id
	}
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	var (
		allSettledAt time.Time
		summarized   bool
	)
	for {
		rows, err := pool.Query(ctx, `
			SELECT event_id, deadline, settled_at, updated_rows, created_rows
			FROM wasso_settlement WHERE event_id = ANY($1) ORDER BY settled_at`, ids)
		if err != nil {
			return errors.Join(ctx.Err(), fmt.Errorf("demo: watch settlements: %w", err))
		}
		var s demoSettlement
		_, err = pgx.ForEachRow(rows, []any{&s.eventID, &s.deadline, &s.settledAt, &s.updatedRows, &s.createdRows}, func() error {
			out.settle(s)
			return nil
		})
		if err != nil {
			return errors.Join(ctx.Err(), fmt.Errorf("demo: watch settlements: %w", err))
		}
		if out.allSettled() && allSettledAt.IsZero() {
			allSettledAt = time.Now()
		}
		// The notices are jobs of their own, worked just after their
		// settlements commit: they get a moment to show before the
		// summary (and, with --exit-when-settled, the stop).
		if !summarized && !allSettledAt.IsZero() && (!out.noticesDue() || !a.cfg.Notify.Enabled || time.Since(allSettledAt) > demoNoticeWait) {
			summarized = true
			out.summary()
			if exitWhenSettled {
				out.println("Stopping (--exit-when-settled)...")
				stop()
				return nil
			}
			out.println("The runner keeps running. Try:")
			for _, s := range next {
				out.println("  " + s)
			}
			out.println("Ctrl-C stops the demo.")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// demoNoticeWait is how long the demo waits, once every event is settled,
// for the absent notices not delivered yet.
const demoNoticeWait = 5 * time.Second

// noticeDeliveredMsg is the message NotifyAbsentWorker logs (at info)
// once a notice is delivered, with event_id and members attributes,
// whatever the notifier.
const noticeDeliveredMsg = "absent notice delivered"

// demoLogger returns the demo's logger. Unless --verbose or an explicit
// log.level asks for the runner's logs, it logs warnings and errors only:
// River's info lines, every few seconds, would bury the demo's own lines,
// but nothing that goes wrong may go unsaid. Either way it turns each
// delivered absent notice into a line of the demo's.
func (a *app) demoLogger(verbose bool, out *demoOutput) *slog.Logger {
	level := a.cfg.Log.Level
	if !verbose && a.cfg.Source("log.level") == "default" {
		level = "warn"
	}
	return slog.New(&demoLogHandler{inner: newLogger(a.stderr, a.cfg.Log.Format, level, a.redact).Handler(), out: out})
}

// demoLogHandler passes records to inner at inner's level, and shows the
// delivered absent notices on out whatever that level.
type demoLogHandler struct {
	inner slog.Handler
	out   *demoOutput
}

func (h *demoLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level == slog.LevelInfo || h.inner.Enabled(ctx, level)
}

func (h *demoLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo && r.Message == noticeDeliveredMsg {
		var eventID, members int64
		r.Attrs(func(attr slog.Attr) bool {
			switch {
			case attr.Key == "event_id" && attr.Value.Kind() == slog.KindInt64:
				eventID = attr.Value.Int64()
			case attr.Key == "members" && attr.Value.Kind() == slog.KindInt64:
				members = attr.Value.Int64()
			}
			return true
		})
		h.out.notice(eventID, r.Time, members)
	}
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *demoLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &demoLogHandler{inner: h.inner.WithAttrs(attrs), out: h.out}
}

func (h *demoLogHandler) WithGroup(name string) slog.Handler {
	return &demoLogHandler{inner: h.inner.WithGroup(name), out: h.out}
}

// demoSettlement is a wasso_settlement row of a demo event.
type demoSettlement struct {
	eventID                  int64
	deadline, settledAt      time.Time
	updatedRows, createdRows int
}

// demoOutput writes the demo's lines on stdout, from the watcher and the
// logger's goroutines, and keeps what the summary needs. A notice is
// delivered after its settlement commits but may be logged before the
// watcher sees the settlement: it waits in pending until then, so that
// each event's lines come in order.
type demoOutput struct {
	w  io.Writer
	tz *time.Location
	// events is set once seeded, before the runner starts.
	events []demoEvent

	mu      sync.Mutex
	settled map[int64]demoSettlement
	noticed map[int64]bool
	pending map[int64][]string
	summed  bool
}

func (o *demoOutput) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format, args...)
}

func (o *demoOutput) println(s string) { o.printf("%s\n", s) }

func (o *demoOutput) title(id int64) string {
	for _, ev := range o.events {
		if ev.id == id {
			return ev.title
		}
	}
	return fmt.Sprintf("event %d", id)
}

// settle prints s unless it was printed already, then the notices that
// waited for it.
func (o *demoOutput) settle(s demoSettlement) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev, ok := o.settled[s.eventID]; ok && prev.settledAt.Equal(s.settledAt) {
		return
	}
	o.settled[s.eventID] = s
	fmt.Fprintf(o.w, "%s  settled %-18q %5.1fs after its deadline: %d UNCHECKED -> ABSENT, %d ABSENT rows created\n",
		s.settledAt.In(o.tz).Format("15:04:05"), o.title(s.eventID), s.settledAt.Sub(s.deadline).Seconds(), s.updatedRows, s.createdRows)
	for _, line := range o.pending[s.eventID] {
		fmt.Fprint(o.w, line)
	}
	delete(o.pending, s.eventID)
}

// notice prints the delivery of an event's absent notice, or keeps it
// until the event's settlement is printed.
func (o *demoOutput) notice(eventID int64, at time.Time, members int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.noticed[eventID] = true
	line := fmt.Sprintf("%s  notice  %-18q absent notice delivered to %s\n", at.In(o.tz).Format("15:04:05"), o.title(eventID), demoCount(int(members), "member"))
	if _, ok := o.settled[eventID]; !ok {
		o.pending[eventID] = append(o.pending[eventID], line)
		return
	}
	fmt.Fprint(o.w, line)
}

func (o *demoOutput) allSettled() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.settled) == len(o.events)
}

// noticesDue reports whether a settled event that marked members absent
// has no notice delivered yet.
func (o *demoOutput) noticesDue() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, s := range o.settled {
		if s.updatedRows+s.createdRows > 0 && !o.noticed[id] {
			return true
		}
	}
	return false
}

// summary prints the events settled, the members marked absent and how
// long after their deadlines the events were settled.
func (o *demoOutput) summary() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.summed = true
	// Notices whose settlement was never seen (the demo stopped in
	// between) are still worth their line.
	for _, lines := range o.pending {
		for _, line := range lines {
			fmt.Fprint(o.w, line)
		}
	}
	clear(o.pending)
	if len(o.settled) == 0 {
		fmt.Fprintf(o.w, "No demo event was settled (of %d).\n", len(o.events))
		return
	}
	var (
		absent int
		delays []time.Duration
	)
	for _, s := range o.settled {
		absent += s.updatedRows + s.createdRows
		delays = append(delays, s.settledAt.Sub(s.deadline))
	}
	slices.Sort(delays)
	median := delays[len(delays)/2]
	if len(delays)%2 == 0 {
		median = (delays[len(delays)/2-1] + median) / 2
	}
	head := "Every demo event is settled: " + demoCount(len(o.settled), "event")
	if len(o.settled) < len(o.events) {
		head = fmt.Sprintf("%d of %d demo events settled", len(o.settled), len(o.events))
	}
	fmt.Fprintf(o.w, "%s, %s marked absent, settled a median %.1fs and at most %.1fs after the deadline.\n",
		head, demoCount(absent, "member"), median.Seconds(), delays[len(delays)-1].Seconds())
}

// stopped ends the demo's output: the summary if it was not printed yet
// (the demo was stopped before every event was settled), then "Stopped.".
func (o *demoOutput) stopped() {
	o.mu.Lock()
	summed := o.summed
	o.mu.Unlock()
	if !summed {
		o.summary()
	}
	o.println("Stopped.")
}

// demoCount is "1 event", "2 events".
func demoCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
