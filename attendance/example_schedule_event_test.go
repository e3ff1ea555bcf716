package attendance_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// createEvent inserts an event the way the backend does (every NOT NULL
// column given), starting at start with check-in closing fail_minutes
// later.
func createEvent(ctx context.Context, tx pgx.Tx, generationID int64, title string, start time.Time, failMinutes int) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO events (title, date, start_datetime, end_datetime, start_minutes, late_minutes, fail_minutes,
		                    location, attendance_type, created_at, updated_at, generation_id)
		VALUES ($1, ($2::timestamptz AT TIME ZONE 'Asia/Seoul')::date, $2, $2 + interval '2 hours', -10, 0, $3,
		        'Club room', 'QR', now(), now(), $4)
		RETURNING id`, title, start, failMinutes, generationID).Scan(&id)
	return id, err
}

// waitSettled polls until the event is settled, for at most a minute: far
// more than a runner needs, even one elected leader late on a loaded
// machine.
func waitSettled(ctx context.Context, pool *pgxpool.Pool, eventID int64) (created int, err error) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		err = pool.QueryRow(ctx, `SELECT created_rows FROM wasso_settlement WHERE event_id = $1`, eventID).Scan(&created)
		if !errors.Is(err, pgx.ErrNoRows) {
			return created, err
		}
	}
	return 0, fmt.Errorf("event %d not settled", eventID)
}

// startExampleRunner starts the River client a wasso-runner runs.
func startExampleRunner(ctx context.Context, db *wassotest.DB) (*wassoriver.Client, error) {
	runner, err := wassoriver.NewClient(db.Pool, wassoriver.Config{Schema: db.Schema, NoSchedules: true})
	if err != nil {
		return nil, err
	}
	return runner, runner.Start(ctx)
}

// The backend creates an event and schedules its settlement in one
// transaction: ScheduleEventTx reads the deadline the transaction just
// wrote and inserts the settle_event job with the backend's River client
// (River's Client.InsertTx), so the job exists if and only if the event
// does. A wasso-runner settles the event at its deadline.
func ExampleScheduleEventTx() {
	ctx := context.Background()
	db, cleanup := wassotest.ExampleDB()
	defer cleanup()
	club, err := seed.CreateClub(ctx, db.Pool, "Chess club", 3, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	runner, err := startExampleRunner(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Stop(ctx) //nolint:errcheck // example

	// The backend's River client only inserts: no queues, no workers.
	// wassoriver.ExactTimeHook starts the settle_event jobs it inserts at
	// their deadlines.
	backend, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Schema: db.Schema,
		Hooks:  []rivertype.Hook{&wassoriver.ExactTimeHook{}},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Check-in closes (start + fail_minutes) one second from now.
	start := time.Now().Add(time.Second - 30*time.Minute)
	var eventID int64
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		eventID, err = createEvent(ctx, tx, club.GenerationID, "Weekly meeting", start, 30)
		if err != nil {
			return err
		}
		scheduled, err := attendance.ScheduleEventTx(ctx, tx, backend, eventID)
		if err != nil {
			return err
		}
		fmt.Println("settlement scheduled at the deadline:", scheduled.Deadline.Equal(start.Add(30*time.Minute).Truncate(time.Microsecond)))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	created, err := waitSettled(ctx, db.Pool, eventID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("members marked absent:", created)

	// Output:
	// settlement scheduled at the deadline: true
	// members marked absent: 3
}

// A backend that already knows the deadline may insert the settle_event
// job itself with River's Client.InsertTx, scheduled at the deadline. If
// the transaction rolls back, neither the event nor the job exists.
func ExampleSettleEventArgs() {
	ctx := context.Background()
	db, cleanup := wassotest.ExampleDB()
	defer cleanup()
	club, err := seed.CreateClub(ctx, db.Pool, "Go club", 2, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	runner, err := startExampleRunner(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Stop(ctx) //nolint:errcheck // example
	backend, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Schema: db.Schema,
		Hooks:  []rivertype.Hook{&wassoriver.ExactTimeHook{}},
	})
	if err != nil {
		log.Fatal(err)
	}

	insert := func(tx pgx.Tx) (int64, error) {
		deadline := time.Now().Add(time.Second)
		eventID, err := createEvent(ctx, tx, club.GenerationID, "Study session", deadline.Add(-15*time.Minute), 15)
		if err != nil {
			return 0, err
		}
		args := attendance.NewSettleEventArgs(eventID, deadline)
		_, err = backend.InsertTx(ctx, tx, args, &river.InsertOpts{ScheduledAt: args.Deadline})
		return eventID, err
	}

	// Rolled back: nothing scheduled.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := insert(tx); err != nil {
		log.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		log.Fatal(err)
	}
	var jobs int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1`, attendance.SettleEventKind).Scan(&jobs); err != nil {
		log.Fatal(err)
	}
	fmt.Println("jobs after rollback:", jobs)

	// Committed: settled at the deadline.
	var eventID int64
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		eventID, err = insert(tx)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	created, err := waitSettled(ctx, db.Pool, eventID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("members marked absent:", created)

	// Output:
	// jobs after rollback: 0
	// members marked absent: 2
}
