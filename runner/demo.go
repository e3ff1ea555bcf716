package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
runner with River UI, prints the URL, and prints each settlement as it
commits. Ctrl-C stops everything and removes the cluster.

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
	f.String("http-addr", HTTPAddrDefault, "HTTP listen address for River UI and metrics; when left at the default and busy, any free port (key http.addr)")
	f.BoolVar(&opts.exitWhenSettled, "exit-when-settled", false, "stop once every seeded event is settled, instead of waiting for Ctrl-C")
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
	if a.cfg.DatabaseURL == "" {
		fmt.Fprintln(a.stdout, "No database configured: starting a private Postgres cluster (removed on exit)...")
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
			}
		}()
		a.cfg.DatabaseURL = cluster.URL(pgtemp.Database)
		fmt.Fprintf(a.stdout, "Postgres is up on 127.0.0.1:%d (data in %s)\n", cluster.Port(), cluster.Dir())
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
	events, err := demoSeed(ctx, pool, opts, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Seeded %q: %d members, %d events:\n", demoClubName, opts.members, len(events))
	for _, ev := range events {
		fmt.Fprintf(a.stdout, "  event %d %-18q check-in closes at %s\n", ev.id, ev.title, ev.deadline.In(a.cfg.TimeZone).Format("15:04:05 MST"))
	}

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
	watchErr := make(chan error, 1)
	err = a.runWith(runCtx, pool, runOptions{OnStarted: func(httpAddr string) {
		if httpAddr != "" {
			fmt.Fprintf(a.stdout, "River UI: http://%s/riverui/   metrics: http://%s/metrics\n", httpAddr, httpAddr)
		}
		fmt.Fprintln(a.stdout, "Waiting for deadlines (Ctrl-C to stop)...")
		go func() { watchErr <- a.demoWatch(runCtx, pool, events, opts.exitWhenSettled, stop) }()
	}})
	select {
	case werr := <-watchErr:
		if err == nil && werr != nil && !errors.Is(werr, context.Canceled) {
			err = werr
		}
	default:
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "Stopped.")
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

// demoWatch prints each settlement of a seeded event as it commits.
func (a *app) demoWatch(ctx context.Context, pool *pgxpool.Pool, events []demoEvent, exitWhenSettled bool, stop func()) error {
	ids := make([]int64, len(events))
	titles := map[int64]string{}
	for i, ev := range events {
		ids[i] = ev.id
		titles[ev.id] = ev.title
	}
	seen := map[int64]time.Time{}
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		rows, err := pool.Query(ctx, `
			SELECT event_id, deadline, settled_at, updated_rows, created_rows
			FROM wasso_settlement WHERE event_id = ANY($1) ORDER BY settled_at`, ids)
		if err != nil {
			return fmt.Errorf("demo: watch settlements: %w", err)
		}
		var (
			id                   int64
			deadline, settledAt  time.Time
			updatedRows, created int
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &deadline, &settledAt, &updatedRows, &created}, func() error {
			if prev, ok := seen[id]; ok && prev.Equal(settledAt) {
				return nil
			}
			seen[id] = settledAt
			fmt.Fprintf(a.stdout, "%s  settled %-18q %5.1fs after its deadline: %d UNCHECKED -> ABSENT, %d ABSENT rows created\n",
				settledAt.In(a.cfg.TimeZone).Format("15:04:05"), titles[id], settledAt.Sub(deadline).Seconds(), updatedRows, created)
			return nil
		})
		if err != nil {
			return fmt.Errorf("demo: watch settlements: %w", err)
		}
		if exitWhenSettled && len(seen) == len(events) {
			fmt.Fprintln(a.stdout, "Every demo event is settled.")
			stop()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}
