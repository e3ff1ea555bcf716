package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/migrations"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// CancelGrace is how long running jobs get to return after their contexts
// are cancelled (once the shutdown timeout has passed, or at a second
// signal). A job still running then is left to River's rescuer, which makes
// it available again; it is never lost. A process manager's stop timeout
// (systemd TimeoutStopSec) should be at least run.shutdown_timeout plus
// this plus a few seconds.
const CancelGrace = 5 * time.Second

func (a *app) runCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Work jobs, run the stored schedules when leader, serve River UI, health and metrics",
		Long: `run works the scheduler's jobs until SIGINT or SIGTERM.

Any number of runners may share a database: they all work jobs, and one of
them, elected through Postgres, runs the stored schedules (wasso-runner
schedule list), among them the attendance sweep; when it stops, another
takes over. At start, run seeds the attendance-sweep schedule (every
sweep.interval) if it was never seeded, as setup does; once seeded, the
stored schedule is the one that counts (wasso-runner schedule update).
--no-periodic runs no schedules and seeds nothing.

On SIGINT or SIGTERM the runner stops fetching jobs and waits up to
run.shutdown_timeout for running jobs to finish, then cancels them (River
makes them available again, to be retried by any runner). A second signal
cancels running jobs at once.

The runner uses one processor thread for Go code (GOMAXPROCS=1) unless the
GOMAXPROCS environment variable says otherwise: its work is waiting on
Postgres, and an idle runner costs half the CPU with one.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Checked before connecting too, so that nothing is started;
			// runWith checks again for its other callers (the demo).
			if err := a.cfg.checkHTTPExposure(); err != nil {
				return err
			}
			if a.env.Process && os.Getenv("GOMAXPROCS") == "" {
				runtime.GOMAXPROCS(RunProcs)
			}
			pool, err := a.openPool(cmd.Context(), poolOptions{MaxConns: a.runPoolSize()})
			if err != nil {
				return err
			}
			defer pool.Close()
			return a.runWith(cmd.Context(), pool, runOptions{})
		},
	}
	f := cmd.Flags()
	f.Int("concurrency", wassoriver.ConcurrencyDefault, "jobs worked at once on the default queue (key run.concurrency)")
	f.String("queues", "", `queues to work and their workers, e.g. "default=4,notify=2"; a name alone gets --concurrency workers (key run.queues)`)
	f.Bool("no-periodic", false, "work jobs only: never run the stored schedules (the sweep among them) even as leader, and seed nothing (key run.periodic: false)")
	f.Bool("no-http", false, "serve no HTTP: no River UI, health checks or metrics (key http.enabled: false)")
	f.String("http-addr", defaultConfig.HTTP.Addr, "HTTP listen address; a non-loopback one needs http.username and http.password (key http.addr)")
	f.Bool("read-only", false, "River UI refuses every change: cancel, retry, delete, queue pause/resume/update (key http.read_only)")
	f.Duration("shutdown-timeout", defaultConfig.Run.ShutdownTimeout, "how long running jobs get to finish on SIGTERM before they are cancelled (key run.shutdown_timeout)")
	f.Duration("sweep-interval", attendance.SweepIntervalDefault, "interval the attendance-sweep schedule is seeded with, at least 1s; once seeded, the stored schedule wins (key sweep.interval)")
	f.Bool("no-notify", false, "enqueue no absent notices for the members a settlement marks absent (key notify.enabled: false)")
	f.Bool("no-deadlines", false, "no exact-deadline settlement here: no per-event jobs, no discovery as leader; the sweep alone (key deadlines.enabled: false)")
	return cmd
}

// RunProcs is the GOMAXPROCS of the wasso-runner binary's run command when
// the GOMAXPROCS environment variable is not set. A runner spends its time
// waiting on Postgres; what it does wake for, it does on one thread. Idle,
// though, River wakes it twenty times a second (its job completer's 50 ms
// ticker) and a few times more (fetch polls, leader loops), and with a
// second processor idle the Go scheduler starts a second thread spinning
// for work at every wake. With one processor an idle runner costs less
// CPU and the 19:00 burst settles as fast (docs/benchmarks.md has the
// figures, runner/measure-idle.sh and internal/latencybench the commands).
// Set
// GOMAXPROCS for job kinds of your own that compute in Go.
const RunProcs = 1

// runPoolSize sizes the pool for the workers of every queue the client
// works (the exact-deadline queue included) plus River's own needs (its
// LISTEN connection, leader election, maintenance, deadline discovery) and
// the HTTP server. Connections are opened on demand, so an idle runner
// holds only a few whatever the maximum.
func (a *app) runPoolSize() int32 {
	queues := a.cfg.RiverConfig().WithDefaults().Queues
	workers := 0
	for _, n := range queues {
		workers += n
	}
	if _, ok := queues[attendance.QueueExact]; !ok && a.cfg.Deadlines.Enabled {
		workers += a.cfg.Deadlines.Concurrency
	}
	// A sweep over a backlog holds sweep.parallel connections, where its
	// worker slot counted one.
	workers += max(a.cfg.Sweep.Parallel-1, 0)
	return int32(min(workers+6, 1000))
}

// runOptions tune runWith for callers other than the run command (the
// demo).
type runOptions struct {
	// OnStarted, if set, is called once the client is started and HTTP is
	// served, with the HTTP address ("" without HTTP).
	OnStarted func(httpAddr string)
}

// runWith runs the River client (and the HTTP server unless disabled) on
// pool until ctx is done, then shuts down gracefully. It checks that the
// database is migrated first.
func (a *app) runWith(ctx context.Context, pool *pgxpool.Pool, opts runOptions) error {
	cfg := a.cfg
	if err := cfg.checkHTTPExposure(); err != nil {
		return err
	}
	st, err := migrations.Check(ctx, pool, migrations.Options{Schema: cfg.Schema})
	if err != nil {
		return &ConfigError{Err: notReady(err)}
	}
	a.warnNewerMigrations(st)
	listen, err := a.openListenPool(ctx)
	if err != nil {
		return err
	}
	if listen != nil {
		defer listen.Close()
	}
	rc := cfg.RiverConfig()
	rc.Logger = a.logger
	rc.Workers = testWorkers()
	rc.ListenPool = listen
	rescuer := &lostRunnerRescuer{a: a, pool: pool}
	running := newRunningJobs()
	rc.Hooks = append(rc.Hooks, rescuer, running)
	client, err := wassoriver.NewClient(pool, rc)
	if err != nil {
		return &ConfigError{Err: err}
	}
	queues := rc.WithDefaults().Queues
	if _, ok := queues[wassoriver.QueueDefault]; !ok {
		a.logger.Warn("this runner does not work the default queue: attendance jobs are left to other runners", slog.Any("queues", slices.Sorted(maps.Keys(queues))))
	}
	// Registered before the client starts, so that every job it fetches
	// names a runner that inspect active knows; see heartbeat.go.
	if err := a.registerRunner(ctx, pool, client.ID()); err != nil {
		return err
	}
	defer a.markRunnerStopped(pool, client.ID())

	m := newMetrics(a, pool, client.ID)
	rescuer.rescued = m.lostJobsRescued
	// A runner whose notifications are lost still works, by polling: it
	// says so once, and /metrics keeps saying it.
	delivered := a.checkNotify(ctx, pool, listen) == nil
	if delivered {
		m.notifyDelivered.Set(1)
	}
	a.warnSessionPooler(ctx, pool, listen, delivered)
	events, unsubscribe := client.Subscribe(subscribedEvents...)
	defer unsubscribe()

	var (
		srv     *httpServer
		httpErr <-chan error
		addr    string
	)
	// The listener is bound before the client starts, so that a port in
	// use is a configuration error with nothing started.
	if cfg.HTTP.Enabled {
		ln, err := a.listen()
		if err != nil {
			return err
		}
		srv, err = newHTTPServer(a, ln, pool, client.Client, m)
		if err != nil {
			ln.Close()
			return err
		}
		addr = ln.Addr().String()
	}

	// Seeded once every configuration error is behind (nothing is written
	// for a run that exits 2) and before the client starts, so that the
	// leader's first pass finds the sweep of a deployment that never ran
	// setup.
	if !rc.NoSchedules {
		if err := a.seedSchedules(ctx, pool); err != nil {
			if srv != nil {
				srv.listener.Close()
			}
			return err
		}
	}

	// The client's context is not ctx: cancelling the context passed to
	// Start is a hard stop, and the first signal must be a soft one.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go consume(workCtx, events, m.observe, running.observe)
	go a.heartbeat(workCtx, pool, client.ID(), running.ids)
	if err := client.Start(workCtx); err != nil {
		if srv != nil {
			srv.listener.Close()
		}
		return fmt.Errorf("start river client: %w", err)
	}
	if srv != nil {
		httpErr, err = srv.start(workCtx)
		if err != nil {
			_ = client.StopAndCancel(context.Background())
			return fmt.Errorf("start river ui: %w", err)
		}
		srv.ready.Store(true)
	}
	m.started.Store(true)

	attrs := []any{
		slog.String("version", versionString()),
		slog.String("client_id", client.ID()),
		slog.Any("queues", queues),
		slog.Int("gomaxprocs", runtime.GOMAXPROCS(0)),
		slog.Bool("periodic", cfg.Run.Periodic),
		slog.Bool("deadlines", cfg.Deadlines.Enabled),
		slog.Duration("sweep_interval", rc.WithDefaults().SweepInterval),
		slog.Duration("shutdown_timeout", cfg.Run.ShutdownTimeout),
		slog.Duration("rescue_after", rc.WithDefaults().RescueStuckJobsAfter),
	}
	if cfg.Schema != "" {
		attrs = append(attrs, slog.String("schema", cfg.Schema))
	}
	if srv != nil {
		attrs = append(attrs, slog.String("http_addr", addr), slog.String("river_ui", "http://"+addr+RiverUIPrefix+"/"),
			slog.String("schedules_page", "http://"+addr+SchedulesPrefix+"/"), slog.Bool("read_only", cfg.HTTP.ReadOnly))
	}
	a.logger.Info("wasso-runner started", attrs...)
	if opts.OnStarted != nil {
		opts.OnStarted(addr)
	}

	var runErr error
	select {
	case <-ctx.Done():
		a.logger.Info("shutting down: waiting for running jobs", slog.Duration("timeout", cfg.Run.ShutdownTimeout))
	case err, ok := <-httpErr:
		if ok && err != nil {
			runErr = fmt.Errorf("http server: %w", err)
			a.logger.Error("http server failed; shutting down", slog.String("error", err.Error()))
		}
	case <-client.Stopped():
		runErr = errors.New("river client stopped unexpectedly")
	}

	if srv != nil {
		srv.ready.Store(false)
	}
	m.started.Store(false)
	a.stopClient(client.Stop, client.StopAndCancel)
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 10*time.Second)
	_ = rescuer.Wait(waitCtx)
	cancelWait()
	if srv != nil {
		httpCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.shutdown(httpCtx)
		cancel()
	}
	cancelWork()
	a.logger.Info("wasso-runner stopped")
	return runErr
}

// seedSchedules creates the default schedules (the attendance sweep every
// sweep.interval) that were never seeded, as setup does, so that a
// deployment that never ran setup sweeps all the same, and logs a line
// when the stored sweep schedule differs from sweep.interval: the stored
// one wins, and an operator who changed sweep.interval should know.
func (a *app) seedSchedules(ctx context.Context, pool *pgxpool.Pool) error {
	store, err := a.newScheduleStore(nil)
	if err != nil {
		return err
	}
	rc := a.cfg.RiverConfig()
	seeded, err := schedule.Seed(ctx, pool, store, wassoriver.DefaultSchedules(rc, time.Now()))
	if err != nil {
		return fmt.Errorf("seed the default schedules: %w", err)
	}
	for _, s := range seeded {
		if s.Outcome == schedule.SeedCreated {
			a.logger.Info("default schedule created", slog.String("schedule", s.Name), slog.Duration("every", rc.WithDefaults().SweepInterval))
		}
	}
	sweep, err := store.Get(ctx, pool, wassoriver.SweepScheduleName)
	switch {
	case errors.Is(err, schedule.ErrNotFound):
		a.logger.Info("the attendance-sweep schedule was removed: no periodic sweep runs (setup and run do not create it again; wasso-runner schedule add creates one)",
			slog.String("schedule", wassoriver.SweepScheduleName))
	case err != nil:
		return fmt.Errorf("read the %s schedule: %w", wassoriver.SweepScheduleName, err)
	case sweep.Every != a.cfg.Sweep.Interval:
		a.logger.Info("the stored attendance-sweep schedule wins over sweep.interval (change it with wasso-runner schedule update)",
			slog.String("schedule", sweep.Name), slog.String("stored", timetable(sweep)), slog.Bool("enabled", sweep.Enabled),
			slog.Duration("sweep_interval", a.cfg.Sweep.Interval))
	case !sweep.Enabled:
		a.logger.Info("the attendance-sweep schedule is disabled: no periodic sweep runs (wasso-runner schedule enable attendance-sweep)",
			slog.String("schedule", sweep.Name))
	}
	return nil
}

// stopClient stops the client gracefully: no new jobs are fetched and
// running ones get run.shutdown_timeout to finish; then (or at once on
// a hard stop) their contexts are cancelled and they get CancelGrace to
// return. Interrupted jobs are made available again by River.
func (a *app) stopClient(stop, stopAndCancel func(context.Context) error) {
	softCtx, cancelSoft := context.WithTimeout(context.Background(), a.cfg.Run.ShutdownTimeout)
	defer cancelSoft()
	go func() {
		select {
		case <-a.hardStop:
			a.logger.Warn("second signal: cancelling running jobs now")
			cancelSoft()
		case <-softCtx.Done():
		}
	}()
	err := stop(softCtx)
	if err == nil {
		return
	}
	if errors.Is(softCtx.Err(), context.DeadlineExceeded) {
		a.logger.Warn("shutdown timeout reached: cancelling running jobs (River retries them)", slog.Duration("timeout", a.cfg.Run.ShutdownTimeout))
	}
	cancelCtx, cancel := context.WithTimeout(context.Background(), CancelGrace)
	defer cancel()
	if err := stopAndCancel(cancelCtx); err != nil {
		a.logger.Error("jobs still running after cancellation; River's rescuer will make them available again", slog.Duration("grace", CancelGrace), slog.String("error", err.Error()))
	}
}
