package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// A backend manages schedules in its own transactions: the nightly sweep
// is created, moved, paused, resumed, run once by hand, listed and
// deleted, and the caller commits. The store's clock is fixed here so the
// output is stable; production leaves Now nil.
func ExampleStore() {
	ctx := context.Background()
	db, cleanup := wassotest.ExampleDB()
	defer cleanup()

	// Any River client inserts the jobs; the runners' scheduler uses its
	// own (NewClient wires it).
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	if err != nil {
		panic(err)
	}
	store, err := schedule.NewStore(schedule.StoreConfig{
		Kinds:           wassoriver.ScheduleKinds(),
		DefaultTimeZone: "Asia/Seoul",
		Inserter:        client,
		Now:             func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		panic(err)
	}

	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		created, err := store.Create(ctx, tx, schedule.Schedule{
			Name:        "nightly-sweep",
			Kind:        attendance.SweepKind,
			Args:        json.RawMessage(`{"lookback": 86400000000000}`),
			Cron:        "0 3 * * *", // 03:00 in Asia/Seoul
			Enabled:     true,
			Description: "settle whatever the per-event jobs missed",
		})
		if err != nil {
			return err
		}
		fmt.Println("created:", created.Name, created.Cron, created.TimeZone, "next", schedule.FormatSlot(created.NextRunAt))

		later := "30 4 * * *"
		updated, err := store.Update(ctx, tx, "nightly-sweep", schedule.Update{Cron: &later})
		if err != nil {
			return err
		}
		fmt.Println("updated: next", schedule.FormatSlot(updated.NextRunAt))

		disabled, err := store.Disable(ctx, tx, "nightly-sweep")
		if err != nil {
			return err
		}
		fmt.Println("disabled: enabled", disabled.Enabled, "next run set", !disabled.NextRunAt.IsZero())
		enabled, err := store.Enable(ctx, tx, "nightly-sweep")
		if err != nil {
			return err
		}
		fmt.Println("enabled: next", schedule.FormatSlot(enabled.NextRunAt))

		run, err := store.RunNow(ctx, tx, "nightly-sweep")
		if err != nil {
			return err
		}
		fmt.Println("run now: slot", schedule.FormatSlot(run.Slot))

		_, err = store.Create(ctx, tx, schedule.Schedule{Name: "nightly-sweep", Kind: attendance.SweepKind, Every: time.Hour})
		fmt.Println("create again:", errors.Is(err, schedule.ErrExists))
		if err == nil {
			return errors.New("created twice")
		}
		return nil
	})
	if err != nil {
		panic(err)
	}

	list, err := store.List(ctx, db.Pool)
	if err != nil {
		panic(err)
	}
	for _, s := range list {
		fmt.Printf("listed: %s runs=%d last=%s next=%s\n", s.Name, s.TotalRunCount, schedule.FormatSlot(s.LastRunAt), schedule.FormatSlot(s.NextRunAt))
	}
	var metadata string
	if err := db.Pool.QueryRow(ctx, `SELECT metadata::text FROM river_job WHERE kind = $1`, attendance.SweepKind).Scan(&metadata); err != nil {
		panic(err)
	}
	fmt.Println("job metadata:", metadata)

	if err := store.Delete(ctx, db.Pool, "nightly-sweep"); err != nil {
		panic(err)
	}
	_, err = store.Get(ctx, db.Pool, "nightly-sweep")
	fmt.Println("deleted:", errors.Is(err, schedule.ErrNotFound))
	// Output:
	// created: nightly-sweep 0 3 * * * Asia/Seoul next 2025-03-01T18:00:00Z
	// updated: next 2025-03-01T19:30:00Z
	// disabled: enabled false next run set false
	// enabled: next 2025-03-01T19:30:00Z
	// run now: slot 2025-03-01T12:00:00Z
	// create again: true
	// listed: nightly-sweep runs=1 last=2025-03-01T12:00:00Z next=2025-03-01T19:30:00Z
	// job metadata: {"slot": "2025-03-01T12:00:00Z", "schedule": "nightly-sweep"}
	// deleted: true
}

// Schedules travel as JSON (an admin API, wasso-runner's CLI): "every" is
// a Go duration string, and a validation error names the field.
func ExampleSchedule_json() {
	var s schedule.Schedule
	err := json.Unmarshal([]byte(`{
		"name": "sweep-5m",
		"kind": "attendance.sweep",
		"every": "5m",
		"enabled": true,
		"missed": "skip"
	}`), &s)
	if err != nil {
		panic(err)
	}
	next, err := s.NextSlot(time.Date(2025, 3, 1, 12, 1, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Name, s.Every, s.Missed, "next", schedule.FormatSlot(next))
	out, err := json.Marshal(schedule.Schedule{Name: "n", Kind: "k", Every: 90 * time.Second})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))

	store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds()})
	if err != nil {
		panic(err)
	}
	err = store.Validate(schedule.Schedule{Name: "bad", Kind: attendance.SweepKind, Cron: "0 9 * *", Enabled: true})
	var fieldErr *schedule.FieldError
	if errors.As(err, &fieldErr) {
		fmt.Println("refused:", fieldErr.Field, errors.Is(err, schedule.ErrInvalidSchedule))
	}
	// Output:
	// sweep-5m 5m0s skip next 2025-03-01T12:05:00Z
	// {"name":"n","kind":"k","enabled":false,"one_off":false,"total_run_count":0,"skipped_count":0,"missed_count":0,"every":"1m30s"}
	// refused: cron true
}
