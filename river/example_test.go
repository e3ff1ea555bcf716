package wassoriver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// A backend builds the client once at start-up, from the pool it already
// has, and starts it: the client works attendance jobs and, when elected
// leader, seeds the attendance-sweep schedule (once ever) and enqueues its
// sweeps, every SweepInterval unless an operator changed the schedule. Later, in the same
// transaction that writes an event, the backend can enqueue a sweep; the
// job exists only if the transaction commits.
func Example() {
	ctx := context.Background()
	db, cleanup := wassotest.ExampleDB()
	defer cleanup()
	var pool *pgxpool.Pool = db.Pool

	client, err := wassoriver.NewClient(pool, wassoriver.Config{
		Schema:        db.Schema, // production leaves this empty
		SweepInterval: 5 * time.Minute,
		// The sweep alone, for this example; by default each event is
		// also settled at its exact deadline, which here could come first.
		NoDeadlines: true,
	})
	if err != nil {
		panic(err)
	}
	completed, stop := client.Subscribe(river.EventKindJobCompleted)
	defer stop()
	if err := client.Start(ctx); err != nil {
		panic(err)
	}
	defer client.Stop(ctx) //nolint:errcheck

	club, err := seed.CreateClub(ctx, pool, "Chess club", 3, time.Now())
	if err != nil {
		panic(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The backend's own write: an event whose check-in closed a
		// minute ago.
		_, err := seed.CreateEvent(ctx, tx, seed.Event{
			GenerationID: club.GenerationID,
			Title:        "Weekly game",
			Start:        time.Now().Add(-31 * time.Minute),
			FailMinutes:  30,
		}, time.Now())
		if err != nil {
			return err
		}
		// Enqueued in the same transaction: both commit or neither does.
		_, err = client.InsertTx(ctx, tx, attendance.SweepArgs{}, nil)
		return err
	})
	if err != nil {
		panic(err)
	}

	for event := range completed {
		// The first sweep of the seeded schedule, which runs at once, may
		// come first and find nothing due yet.
		if out := sweepOutput(event.Job); out.ProcessedEvents > 0 {
			fmt.Printf("processed %d event, updated %d rows, created %d rows\n",
				out.ProcessedEvents, out.UpdatedRows, out.CreatedRows)
			break
		}
	}
	// Output:
	// processed 1 event, updated 0 rows, created 3 rows
}

func sweepOutput(job *rivertype.JobRow) attendance.SweepOutput {
	var out attendance.SweepOutput
	if job.Kind == attendance.SweepKind {
		_ = json.Unmarshal(job.Output(), &out)
	}
	return out
}
