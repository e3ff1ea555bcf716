package main

// This file is the whole task: the four steps of adding a job to the Wasso
// scheduler, in order. main.go is a demo that runs it; reminder_test.go is
// step 5, its tests.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
	wassoriver "github.com/wasso/scheduler/river"
)

// ---------------------------------------------------------------------------
// Step 1: the job's args. They name the job's kind and hold what the worker
// needs to find its work: ids and the instant it is for, never data that
// may change before it runs (names, rosters), which the worker reads then.

// ReminderKind is the River job kind of the check-in reminder.
const ReminderKind = "example.checkin_reminder"

// ReminderArgs remind the members of an event's roster who have not checked
// in yet, when its check-in opens (start_datetime + start_minutes).
type ReminderArgs struct {
	EventID int64     `json:"event_id"`
	OpensAt time.Time `json:"opens_at"` // UTC, so equal instants give equal args
}

// Kind is the River job kind.
func (ReminderArgs) Kind() string { return ReminderKind }

// InsertOpts puts reminders in the exact-time queue, whose runners poll it
// every 100 ms, and makes them unique by args in every state, completed
// included: one reminder per event and opening, however often it is
// planned.
func (ReminderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      attendance.QueueExact,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// Hooks makes a reminder start at its ScheduledAt rather than up to five
// seconds later, when River's scheduler would get to it (see
// wassoriver.ExactTimeHook), whichever River client inserts it.
func (ReminderArgs) Hooks() []rivertype.Hook { return []rivertype.Hook{&wassoriver.ExactTimeHook{}} }

// ---------------------------------------------------------------------------
// Step 2: the worker. It reads the current state, does its work, records
// what it did as the job's output, and returns an error only for what a
// retry can fix.

// Reminder is what members who have not checked in are told.
type Reminder struct {
	EventID    int64     `json:"event_id"`
	EventTitle string    `json:"event_title"`
	ClubName   string    `json:"club_name"`
	OpensAt    time.Time `json:"opens_at"`
	// UserIDs are the backend's user ids of the members to remind.
	UserIDs []int64 `json:"user_ids"`
}

// Sender delivers reminders: the backend's push provider in production.
type Sender interface {
	SendReminder(ctx context.Context, r Reminder) error
}

// ReminderOutput is recorded as the job's output.
type ReminderOutput struct {
	Sent       bool   `json:"sent"`
	Recipients int    `json:"recipients"`
	Skipped    string `json:"skipped,omitempty"`
}

// ReminderWorker works example.checkin_reminder jobs.
type ReminderWorker struct {
	river.WorkerDefaults[ReminderArgs]

	DB     attendance.DB
	Sender Sender
}

// Work sends the reminder to the roster members whose latest attendance
// row is missing or UNCHECKED. A reminder for an event that was deleted,
// or whose check-in now opens at another instant (the planner schedules
// that one), is skipped. A Sender error is returned, and River retries.
func (w *ReminderWorker) Work(ctx context.Context, job *river.Job[ReminderArgs]) error {
	r := Reminder{EventID: job.Args.EventID, UserIDs: []int64{}}
	err := w.DB.QueryRow(ctx, reminderEventSQL, job.Args.EventID).Scan(&r.EventTitle, &r.ClubName, &r.OpensAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return river.RecordOutput(ctx, ReminderOutput{Skipped: "event deleted"})
	}
	if err != nil {
		return fmt.Errorf("read event %d: %w", job.Args.EventID, err)
	}
	if !r.OpensAt.Equal(job.Args.OpensAt) {
		return river.RecordOutput(ctx, ReminderOutput{Skipped: "check-in moved to " + r.OpensAt.UTC().Format(time.RFC3339)})
	}
	rows, err := w.DB.Query(ctx, notCheckedInSQL, job.Args.EventID)
	if err != nil {
		return fmt.Errorf("read roster of event %d: %w", job.Args.EventID, err)
	}
	if r.UserIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return fmt.Errorf("read roster of event %d: %w", job.Args.EventID, err)
	}
	if len(r.UserIDs) > 0 {
		if err := w.Sender.SendReminder(ctx, r); err != nil {
			return fmt.Errorf("send reminder of event %d: %w", job.Args.EventID, err)
		}
	}
	return river.RecordOutput(ctx, ReminderOutput{Sent: len(r.UserIDs) > 0, Recipients: len(r.UserIDs)})
}

const (
	// reminderEventSQL reads the event by primary key; a deleted
	// generation counts as a deleted event.
	reminderEventSQL = `
SELECT e.title, c.name, e.start_datetime + make_interval(mins => e.start_minutes)
FROM events e
JOIN club_generation g ON g.id = e.generation_id AND NOT g.is_deleted
JOIN club_club c ON c.id = g.club_id
WHERE e.id = $1`

	// notCheckedInSQL is the roster of the settlement rules (current,
	// undeleted members of the event's generation) whose latest row
	// (greatest created_at, then id) is missing or UNCHECKED.
	notCheckedInSQL = `
SELECT m.user_id
FROM events e
JOIN generation_mapping gm ON gm.generation_id = e.generation_id AND gm.is_current
JOIN club_member m ON m.id = gm.member_id AND NOT m.is_deleted
LEFT JOIN LATERAL (
    SELECT a.status FROM attendances a
    WHERE a.event_id = e.id AND a.generation_mapping_id = gm.id
    ORDER BY a.created_at DESC, a.id DESC
    LIMIT 1
) latest ON true
WHERE e.id = $1 AND (latest.status IS NULL OR latest.status = 0)
ORDER BY m.user_id`
)

// ---------------------------------------------------------------------------
// Step 3: the schedule. Two ways in, like the settlement's:
//
//   - ScheduleReminderTx, in the backend's transaction that creates or
//     moves the event: exact, whatever the lead time.
//   - A periodic planner on the leader, for events the Django backend
//     writes: every PlanInterval it inserts the reminders of the events
//     whose check-in opens within PlanHorizon. An event written less than
//     PlanInterval before its check-in opens is reminded up to that much
//     late; every other one at its instant.

// PlanInterval is how often the planner runs; PlanHorizon how far ahead it
// plans.
const (
	PlanInterval = time.Minute
	PlanHorizon  = 10 * time.Minute
	// PlanCatchUp is how long after check-in opened a reminder is still
	// sent; later, the member has most likely heard of the event anyway.
	PlanCatchUp = 5 * time.Minute
)

// ScheduleReminderTx inserts the reminder of an event in the caller's
// transaction, for the opening the transaction sees. The caller commits.
func ScheduleReminderTx(ctx context.Context, tx pgx.Tx, inserter attendance.Inserter, eventID int64) error {
	var opensAt time.Time
	err := tx.QueryRow(ctx, `SELECT start_datetime + make_interval(mins => start_minutes) FROM events WHERE id = $1`, eventID).Scan(&opensAt)
	if err != nil {
		return fmt.Errorf("read opening of event %d: %w", eventID, err)
	}
	args := ReminderArgs{EventID: eventID, OpensAt: opensAt.UTC()}
	if _, err := inserter.InsertTx(ctx, tx, args, &river.InsertOpts{ScheduledAt: args.OpensAt}); err != nil {
		return fmt.Errorf("insert reminder of event %d: %w", eventID, err)
	}
	return nil
}

// PlanRemindersKind is the River job kind of the planner.
const PlanRemindersKind = "example.plan_reminders"

// PlanRemindersArgs are the planner's (empty) args.
type PlanRemindersArgs struct{}

// Kind is the River job kind.
func (PlanRemindersArgs) Kind() string { return PlanRemindersKind }

// PlanRemindersWorker inserts the reminders of the events whose check-in
// opens within PlanHorizon or opened within PlanCatchUp.
type PlanRemindersWorker struct {
	river.WorkerDefaults[PlanRemindersArgs]

	DB attendance.Beginner
}

// Work plans the upcoming reminders in one transaction, with the River
// client working the job. Reminders planned before are skipped by their
// unique args.
func (w *PlanRemindersWorker) Work(ctx context.Context, job *river.Job[PlanRemindersArgs]) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	planned := 0
	err = pgx.BeginFunc(ctx, w.DB, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, upcomingOpeningsSQL, PlanHorizon.Microseconds(), PlanCatchUp.Microseconds())
		if err != nil {
			return err
		}
		var params []river.InsertManyParams
		var id int64
		var opensAt time.Time
		_, err = pgx.ForEachRow(rows, []any{&id, &opensAt}, func() error {
			args := ReminderArgs{EventID: id, OpensAt: opensAt.UTC()}
			params = append(params, river.InsertManyParams{Args: args, InsertOpts: &river.InsertOpts{ScheduledAt: args.OpensAt}})
			return nil
		})
		if err != nil || len(params) == 0 {
			return err
		}
		res, err := client.InsertManyTx(ctx, tx, params)
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				planned++
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("plan reminders: %w", err)
	}
	return river.RecordOutput(ctx, map[string]int{"planned": planned})
}

// upcomingOpeningsSQL finds the check-ins opening within the horizon, and
// those that opened within PlanCatchUp (written too late for an earlier
// pass, or opened while no runner was leader): their reminder is sent at
// once. No
// index covers start + start_minutes, so it narrows on the deadline index
// (wasso_events_deadline_idx): check-in opens before it closes, so an
// opening in the window has a deadline after its start, and no event keeps
// check-in open for more than a day.
const upcomingOpeningsSQL = `
SELECT e.id, e.start_datetime + make_interval(mins => e.start_minutes)
FROM events e
JOIN club_generation g ON g.id = e.generation_id AND NOT g.is_deleted
WHERE wasso_deadline(e.start_datetime, e.fail_minutes) > now() - make_interval(secs => $2::bigint / 1e6)
  AND wasso_deadline(e.start_datetime, e.fail_minutes) <= now() + make_interval(secs => $1::bigint / 1e6) + interval '1 day'
  AND e.start_datetime + make_interval(mins => e.start_minutes) > now() - make_interval(secs => $2::bigint / 1e6)
  AND e.start_datetime + make_interval(mins => e.start_minutes) <= now() + make_interval(secs => $1::bigint / 1e6)
ORDER BY e.id`

// PeriodicPlanReminders is the planner's periodic job: every PlanInterval
// on the leader, and once when a runner becomes leader.
func PeriodicPlanReminders() *river.PeriodicJob {
	return river.NewPeriodicJob(
		river.PeriodicInterval(PlanInterval),
		func() (river.JobArgs, *river.InsertOpts) {
			return PlanRemindersArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: PlanInterval}}
		},
		&river.PeriodicJobOpts{ID: PlanRemindersKind, RunOnStart: true},
	)
}

// ---------------------------------------------------------------------------
// Step 4: registration. The workers go on the registry the runner's client
// is built with, and the planner among its periodic jobs; wassoriver adds
// the attendance workers and the exact-time queue next to them.

// Register adds the reminder task to a wassoriver config.
func Register(config *wassoriver.Config, db interface {
	attendance.DB
	attendance.Beginner
}, sender Sender) error {
	if config.Workers == nil {
		config.Workers = river.NewWorkers()
	}
	if err := river.AddWorkerSafely(config.Workers, &ReminderWorker{DB: db, Sender: sender}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(config.Workers, &PlanRemindersWorker{DB: db}); err != nil {
		return err
	}
	config.PeriodicJobs = append(config.PeriodicJobs, PeriodicPlanReminders())
	return nil
}
