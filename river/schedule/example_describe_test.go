package schedule_test

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// An operator pauses a schedule with a note, and Describe shows it with
// the next slots, each with its UTC offset: the schedule runs at 09:00 in
// Berlin, and the clocks go forward on 2025-03-30. The store's clock is
// fixed so the output is stable.
func ExampleStore_Describe() {
	ctx := context.Background()
	db, cleanup := wassotest.ExampleDB()
	defer cleanup()
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	if err != nil {
		panic(err)
	}
	store, err := schedule.NewStore(schedule.StoreConfig{
		Kinds:    wassoriver.ScheduleKinds(),
		Inserter: client, // Describe lists the runs through it
		Now:      func() time.Time { return time.Date(2025, 3, 27, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		panic(err)
	}
	_, err = store.Create(ctx, db.Pool, schedule.Schedule{
		Name: "morning-sweep", Kind: attendance.SweepKind, Cron: "0 9 * * *", TimeZone: "Europe/Berlin", Enabled: true,
	})
	if err != nil {
		panic(err)
	}
	if _, err := store.RunNow(ctx, db.Pool, "morning-sweep"); err != nil {
		panic(err)
	}
	paused, err := store.Pause(ctx, db.Pool, "morning-sweep", schedule.PauseNote{By: "alice", Note: "club closed for Easter"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("paused by %s at %s: %s\n", paused.Paused.By, schedule.FormatSlot(paused.Paused.At), paused.Paused.Note)

	d, err := store.Describe(ctx, db.Pool, "morning-sweep")
	if err != nil {
		panic(err)
	}
	for _, slot := range d.NextSlots[:5] {
		mark := ""
		if slot.OffsetChanged {
			mark = " DST change"
		}
		fmt.Printf("%s %s%s\n", slot.Local.Format("2006-01-02 15:04 MST"), slot.Offset, mark)
	}
	for _, run := range d.Runs {
		fmt.Printf("run: slot %s, %s, attempt %d of %d\n", schedule.FormatSlot(run.Slot), run.State, run.Attempt, run.MaxAttempts)
	}
	// Output:
	// paused by alice at 2025-03-27T12:00:00Z: club closed for Easter
	// 2025-03-28 09:00 CET +01:00
	// 2025-03-29 09:00 CET +01:00
	// 2025-03-30 09:00 CEST +02:00 DST change
	// 2025-03-31 09:00 CEST +02:00
	// 2025-04-01 09:00 CEST +02:00
	// run: slot 2025-03-27T12:00:00Z, available, attempt 0 of 25
}
