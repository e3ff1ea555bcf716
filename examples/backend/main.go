// Command backend is a small HTTP service in the role of the Wasso Go
// backend: it creates events and schedules their settlement in the same
// transaction, with an insert-only River client, and leaves the work to
// the runners (wasso-runner run, or -runner to embed one for a demo).
//
//	POST  /events                 {"generation_id":1,"title":"Weekly meeting","start":"2026-03-02T19:00:00+09:00","fail_minutes":30}
//	PATCH /events/{id}            {"start":"..."} or {"fail_minutes":45}: moves the deadline, reschedules
//	GET   /events/{id}/settlement the settlement, once there is one
//
// Run it against a database the runners use:
//
//	go run ./examples/backend -database-url postgres://... -addr 127.0.0.1:8080
//
// or, for a self-contained demo on a scratch schema (Wasso tables
// created, a runner embedded):
//
//	go run ./examples/backend -database-url postgres://postgres@127.0.0.1:5432/postgres -schema backend_demo -migrate -runner
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/migrations"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. onListen, if set, is told the address the
// server listens on (tests pass -addr 127.0.0.1:0).
func run(ctx context.Context, args []string, logOut io.Writer, onListen func(addr string)) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	dbURL := fs.String("database-url", os.Getenv("WASSO_DATABASE_URL"), "Postgres URL (env WASSO_DATABASE_URL)")
	schema := fs.String("schema", "", "schema of the Wasso and River tables (default: search_path)")
	migrate := fs.Bool("migrate", false, "apply the scheduler's migrations first, creating the Wasso tables if there are none (scratch databases only)")
	embedRunner := fs.Bool("runner", false, "also run a wasso runner in this process (demo)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbURL == "" {
		return errors.New("-database-url or WASSO_DATABASE_URL is required")
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))

	cfg, err := pgxpool.ParseConfig(*dbURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	if *schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = *schema
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	if *migrate {
		if *schema != "" {
			if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{*schema}.Sanitize()); err != nil {
				return fmt.Errorf("create schema: %w", err)
			}
		}
		if _, err := migrations.Up(ctx, pool, migrations.Options{Schema: *schema, WithWassoSchema: true, Logger: logger}); err != nil {
			return err
		}
	}
	if err := migrations.CheckScheduler(ctx, pool, migrations.Options{Schema: *schema}); err != nil {
		return err
	}

	// The backend's River client only inserts: no queues, no workers. Its
	// jobs are worked by whichever runner fetches them. ExactTimeHook lets
	// the settle_event jobs it inserts start at their deadlines.
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: *schema,
		Logger: logger,
		Hooks:  []rivertype.Hook{&wassoriver.ExactTimeHook{}},
	})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	if *embedRunner {
		config := wassoriver.Config{Schema: *schema, Logger: logger}
		// The sweep is a stored schedule, created once (wasso-runner setup
		// or run would do the same): after that it is the operator's.
		store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds()})
		if err != nil {
			return err
		}
		if _, err := schedule.Seed(ctx, pool, store, wassoriver.DefaultSchedules(config, time.Now())); err != nil {
			return err
		}
		runner, err := wassoriver.NewClient(pool, config)
		if err != nil {
			return err
		}
		if err := runner.Start(ctx); err != nil {
			return fmt.Errorf("start runner: %w", err)
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = runner.Stop(stopCtx)
		}()
	}

	srv := &http.Server{
		Handler:           (&server{pool: pool, inserter: inserter, logger: logger}).routes(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.InfoContext(ctx, "backend listening", slog.String("addr", ln.Addr().String()))
	if onListen != nil {
		onListen(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
