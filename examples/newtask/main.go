// Command newtask is the first "new task" example: a check-in reminder,
// sent to the roster members who have not checked in when an event's
// check-in opens (start_datetime + start_minutes), at that instant.
//
// reminder.go walks through every step of adding a task to the scheduler
// (args, worker, schedule, registration) and reminder_test.go is the last
// one (tests). This file is a demo: it creates a scratch schema holding
// the Wasso tables, a club of four members one of whom has checked in
// already, and an event whose check-in opens three seconds later; it runs
// a River client as a wasso-runner with the task registered, prints the
// reminder when it is sent, and drops the schema.
//
//	go run ./examples/newtask -database-url postgres://postgres@127.0.0.1:5432/postgres
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/migrations"
	wassoriver "github.com/wasso/scheduler/river"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "newtask:", err)
		os.Exit(1)
	}
}

// chanSender prints each reminder and hands it to the demo.
type chanSender struct {
	out  io.Writer
	sent chan Reminder
}

func (s chanSender) SendReminder(_ context.Context, r Reminder) error {
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "reminder sent: %s\n", js)
	s.sent <- r
	return nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("newtask", flag.ContinueOnError)
	dbURL := fs.String("database-url", envOr("WASSO_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "Postgres to create the scratch schema in (env WASSO_DATABASE_URL)")
	opensIn := fs.Duration("opens-in", 3*time.Second, "check-in opens this long after the demo starts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// A scratch schema: the Wasso tables, River's and the scheduler's.
	admin, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	schema := "newtask_demo_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer func() { _, _ = admin.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE") }()
	cfg, err := pgxpool.ParseConfig(*dbURL)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool, migrations.Options{Schema: schema, WithWassoSchema: true}); err != nil {
		return err
	}

	// A club of four; member 0 has checked in already.
	now := time.Now()
	club, err := seed.CreateClub(ctx, pool, "Chess club", 4, now)
	if err != nil {
		return err
	}
	start := now.Add(*opensIn + 10*time.Minute)
	event, err := seed.CreateEvent(ctx, pool, seed.Event{GenerationID: club.GenerationID, Title: "Weekly meeting", Start: start, StartMinutes: -10, LateMinutes: 5, FailMinutes: 15}, now)
	if err != nil {
		return err
	}
	if _, err := seed.AddAttendance(ctx, pool, event, club.MappingIDs[0], attendance.StatusPresent, now); err != nil {
		return err
	}
	fmt.Fprintf(out, "event %d: check-in opens at %s\n", event, start.Add(-10*time.Minute).Format(time.TimeOnly))

	// The runner, with the task registered.
	sender := chanSender{out: out, sent: make(chan Reminder, 1)}
	config := wassoriver.Config{Schema: schema, Logger: logger}
	if err := Register(&config, pool, sender); err != nil {
		return err
	}
	client, err := wassoriver.NewClient(pool, config)
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	}()

	select {
	case r := <-sender.sent:
		fmt.Fprintf(out, "reminded %d of 4 members, %s after check-in opened\n", len(r.UserIDs), time.Since(r.OpensAt).Round(10*time.Millisecond))
		return nil
	case <-time.After(*opensIn + 30*time.Second):
		return fmt.Errorf("no reminder within 30 s of check-in opening")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
