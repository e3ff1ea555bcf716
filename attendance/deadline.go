package attendance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// SettleEventKind is the River job kind that settles one event at its
// deadline.
const SettleEventKind = "attendance.settle_event"

// QueueExact is the River queue of the jobs that must start at their
// scheduled instant: the per-event settlements, and any task of the
// backend's that must do the same (see examples/newtask). It is a queue of
// its own so that its producer can poll often without every queue doing
// so, and so that a backlog of slow jobs elsewhere (a webhook that times
// out, say) never holds a settlement back.
//
// Its jobs start at their instants through wassoriver: the River clients
// that insert them carry wassoriver.ExactTimeHook, and the leader's
// wassoriver.Discoverer makes them available just ahead of their instants
// and wakes the runners at them.
const QueueExact = "attendance_exact"

// uniqueWhileWaiting are the job states in which a second settle_event job
// for the same event and deadline is not inserted. Completed jobs are left
// out on purpose: an event moved away from a deadline and back to it after
// that deadline's job ran must get a job again.
var uniqueWhileWaiting = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// SettleEventArgs are the arguments of the attendance.settle_event job,
// which settles one event once its deadline has passed. A job is inserted
// per event and deadline, scheduled at the deadline, in QueueExact: by
// ScheduleEventTx in the backend's transaction, or by the leader's
// discovery pass (DiscoverTx) for events the backend wrote without it.
//
// The job settles whatever is due for the event when it runs, and with it
// the other due events up to SettleEventConfig.BurstLimit (the burst of a
// deadline shared by many events), so stale or duplicate jobs are
// harmless: a job for a deadline the event has moved away from, or for an
// event that was deleted or already settled (by another job's batch, say),
// finds it not due, settles only what else is due, and completes. Settlement stays
// idempotent through wasso_settlement, whoever runs it.
type SettleEventArgs struct {
	// EventID is the event to settle.
	EventID int64 `json:"event_id"`
	// Deadline is the deadline the job was scheduled for, in UTC (so that
	// two jobs for one instant have equal args and so one unique key).
	Deadline time.Time `json:"deadline"`
}

// NewSettleEventArgs returns the args of the job that settles eventID at
// deadline, with the deadline in UTC.
func NewSettleEventArgs(eventID int64, deadline time.Time) SettleEventArgs {
	return SettleEventArgs{EventID: eventID, Deadline: deadline.UTC()}
}

// Kind is the River job kind.
func (SettleEventArgs) Kind() string { return SettleEventKind }

// InsertOpts puts the job in QueueExact, unique by args while it waits or
// runs.
func (SettleEventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueExact,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: uniqueWhileWaiting},
	}
}

// insertParams returns the insert params of the job: scheduled at the
// deadline, which for a deadline already past means at once.
func (a SettleEventArgs) insertParams() river.InsertManyParams {
	return river.InsertManyParams{Args: a, InsertOpts: &river.InsertOpts{ScheduledAt: a.Deadline}}
}

// BurstLimitDefault is how many events one settle_event job settles at
// most in its transaction: its own event and, when others are due too (a
// deadline shared by many clubs, 19:00), up to this many in all. One
// transaction and two statements then settle what took one job, one
// transaction and two statements per event, and the jobs of the events it
// settled find nothing due. 200 events of ten members take a transaction
// of the order of a hundred milliseconds, short enough that a job whose
// own event is in another job's batch waits little for it, and long
// enough that a burst of a thousand events takes a handful of batches
// (see internal/latencybench -burst).
const BurstLimitDefault = 200

// SettleEventOutput is recorded as the settle_event job's output.
type SettleEventOutput struct {
	// Settled is false when the job's own event was not due: the event
	// moved, was deleted, or was already settled by another job (in its
	// batch) or a sweep.
	Settled bool `json:"settled"`
	// BatchEvents counts the events the job settled, its own included:
	// the other due events it settled in the same transaction (see
	// SettleEventConfig.BurstLimit).
	BatchEvents int `json:"batch_events"`
	// UpdatedRows and CreatedRows are those of the job's own event.
	UpdatedRows int `json:"updated_rows"`
	CreatedRows int `json:"created_rows"`
	// BatchUpdatedRows and BatchCreatedRows are those of the whole batch.
	BatchUpdatedRows int `json:"batch_updated_rows,omitempty"`
	BatchCreatedRows int `json:"batch_created_rows,omitempty"`
	// LateMillis is how long after the job's deadline the settlement's
	// statement ran, when it settled something.
	LateMillis int64 `json:"late_ms,omitempty"`
	// WaitedWriters counts the backend's transactions in flight on
	// attendances that the settlement waited for (SettleParams.WriterWait),
	// and WriterWaitTimedOut says whether it gave up on one of them.
	WaitedWriters      int  `json:"waited_writers,omitempty"`
	WriterWaitTimedOut bool `json:"writer_wait_timed_out,omitempty"`
}

// SettleEventConfig configures a SettleEventWorker.
type SettleEventConfig struct {
	// FollowUp, if set, runs in the settlement's transaction when the
	// event was settled, for the jobs that must commit with it (such as
	// NotifyFollowUp's notification).
	FollowUp FollowUpFunc
	// Logger receives one line per settlement. Nil discards logs.
	Logger *slog.Logger
	// Lookback is how old a deadline may be and still be settled. Zero
	// means LookbackDefault.
	Lookback time.Duration
	// Timeout bounds one settlement job. Zero keeps River's job timeout.
	Timeout time.Duration
	// BurstLimit is the most events one job settles in its transaction:
	// its own event first, then the other due events in deadline then id
	// order. Zero means BurstLimitDefault; 1 settles the job's own event
	// only.
	BurstLimit int
}

// SettleEventWorker works attendance.settle_event jobs: it settles the
// job's event, if it is due, and the other due events up to
// SettleEventConfig.BurstLimit, in one transaction with their follow-up
// jobs.
type SettleEventWorker struct {
	river.WorkerDefaults[SettleEventArgs]

	config SettleEventConfig
	db     Beginner
}

// NewSettleEventWorker returns a SettleEventWorker settling events in db
// (usually the *pgxpool.Pool the River client uses).
func NewSettleEventWorker(db Beginner, config SettleEventConfig) (*SettleEventWorker, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: database is nil", ErrInvalidParams)
	}
	if config.Lookback < 0 {
		return nil, fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidParams, config.Lookback)
	}
	if config.Timeout < 0 {
		return nil, fmt.Errorf("%w: timeout %s must not be negative", ErrInvalidParams, config.Timeout)
	}
	if config.BurstLimit < 0 {
		return nil, fmt.Errorf("%w: burst limit %d must not be negative", ErrInvalidParams, config.BurstLimit)
	}
	if config.BurstLimit == 0 {
		config.BurstLimit = BurstLimitDefault
	}
	if config.Logger == nil {
		config.Logger = slog.New(slog.DiscardHandler)
	}
	return &SettleEventWorker{config: config, db: db}, nil
}

// Timeout is the configured settlement timeout (zero: River's default).
func (w *SettleEventWorker) Timeout(*river.Job[SettleEventArgs]) time.Duration {
	return w.config.Timeout
}

// Work settles the job's event if it is due, and with it the other due
// events, up to SettleEventConfig.BurstLimit in all, in one transaction
// with the follow-up jobs of every one of them. A job whose event is not
// due still settles the others; only database errors fail it, and River
// retries it with its backoff.
//
// The job's own event is claimed first, waiting for a concurrent
// settlement of it, so it is never crowded out by the others; they are
// claimed next, those another job or sweep holds skipped. Each event
// keeps its guarantees: it settles atomically, once per deadline (the
// claim), never before its deadline (the claim compares it with the
// database clock), with its notices in the settling transaction, and
// again when its deadline moves. The writers in flight are waited for once
// per batch.
func (w *SettleEventWorker) Work(ctx context.Context, job *river.Job[SettleEventArgs]) error {
	if job.Args.EventID <= 0 {
		return river.JobCancel(fmt.Errorf("%w: event id %d must be positive", ErrInvalidParams, job.Args.EventID))
	}
	var (
		res  *SettleResult
		own  *SettledEvent
		wait time.Duration
	)
	err := pgx.BeginTxFunc(ctx, w.db, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		var err error
		res, err = SettleDueTx(ctx, tx, SettleParams{First: []int64{job.Args.EventID}, Limit: burstLimit(job, w.config.BurstLimit), Lookback: w.config.Lookback})
		if err != nil {
			return err
		}
		for i := range res.Events {
			if res.Events[i].EventID == job.Args.EventID {
				own = &res.Events[i]
			}
		}
		if own == nil {
			if wait, err = untilDeadline(ctx, tx, job.Args); err != nil {
				return err
			}
		}
		if res.ProcessedEvents > 0 && w.config.FollowUp != nil {
			return w.config.FollowUp(ctx, tx, res)
		}
		return nil
	})
	if err != nil {
		w.config.Logger.ErrorContext(ctx, "attendance event settlement failed",
			slog.Int64("job_id", job.ID), slog.Int64("event_id", job.Args.EventID), slog.String("error", err.Error()))
		return fmt.Errorf("settle event %d: %w", job.Args.EventID, err)
	}
	out := SettleEventOutput{
		BatchEvents:      res.ProcessedEvents,
		BatchUpdatedRows: res.UpdatedRows,
		BatchCreatedRows: res.CreatedRows,
	}
	if res.ProcessedEvents > 0 {
		out.WaitedWriters = res.WaitedWriters
		out.WriterWaitTimedOut = res.WriterWaitTimeouts > 0
	}
	if own != nil {
		out.Settled = true
		out.UpdatedRows = own.UpdatedRows
		out.CreatedRows = own.CreatedRows
		out.LateMillis = res.Now.Sub(job.Args.Deadline).Milliseconds()
		w.config.Logger.InfoContext(ctx, "attendance event settled",
			slog.Int64("job_id", job.ID),
			slog.Int64("event_id", own.EventID),
			slog.Time("deadline", own.Deadline),
			slog.Int("updated_rows", own.UpdatedRows),
			slog.Int("created_rows", own.CreatedRows),
			slog.Int64("late_ms", out.LateMillis),
			slog.Int("batch_events", out.BatchEvents),
			slog.Int("waited_writers", out.WaitedWriters),
			slog.Bool("writer_wait_timed_out", out.WriterWaitTimedOut),
		)
	} else if res.ProcessedEvents > 0 {
		w.config.Logger.InfoContext(ctx, "attendance events settled by another event's job",
			slog.Int64("job_id", job.ID),
			slog.Int64("event_id", job.Args.EventID),
			slog.Int("batch_events", out.BatchEvents),
			slog.Int("waited_writers", out.WaitedWriters),
			slog.Bool("writer_wait_timed_out", out.WriterWaitTimedOut),
		)
	}
	if own == nil {
		// A job retried by hand (River UI's retry makes it available now)
		// runs before its deadline. If the event still has that deadline,
		// wait for it rather than complete and leave the event to the
		// sweep.
		if wait > 0 {
			w.config.Logger.InfoContext(ctx, "attendance event not due yet: snoozed until its deadline",
				slog.Int64("job_id", job.ID), slog.Int64("event_id", job.Args.EventID), slog.Time("deadline", job.Args.Deadline))
			return river.JobSnooze(wait)
		}
		w.config.Logger.DebugContext(ctx, "attendance event not due",
			slog.Int64("job_id", job.ID), slog.Int64("event_id", job.Args.EventID), slog.Time("deadline", job.Args.Deadline))
	}
	if err := river.RecordOutput(ctx, out); err != nil {
		return fmt.Errorf("record settle_event output: %w", err)
	}
	return nil
}

// Inserter inserts River jobs inside a caller's transaction.
// *river.Client[pgx.Tx] is one, including an insert-only client (built on
// riverpgxv5.New(nil) or on a pool, without queues).
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// ScheduledEvent says what ScheduleEventTx scheduled.
type ScheduledEvent struct {
	// EventID is the event.
	EventID int64
	// Deadline is its current deadline, in UTC.
	Deadline time.Time
	// AlreadySettled is true when the event is already settled for this
	// deadline; no job is inserted then.
	AlreadySettled bool
	// Job is River's answer for the inserted settle_event job (nil when
	// AlreadySettled). Job.UniqueSkippedAsDuplicate is true when a job for
	// this event and deadline was already waiting.
	Job *rivertype.JobInsertResult
}

// ScheduleEventTx schedules the settlement of an event at its current
// deadline, inside the caller's transaction: it reads the event's deadline
// in tx (so it sees the event the transaction just created or changed),
// records the plan in wasso_deadline_plan and inserts the
// attendance.settle_event job with inserter.InsertTx. Nothing is committed;
// the caller commits or rolls back, and the job commits or rolls back with
// the event. Call it after creating an event and after every change of its
// start_datetime or fail_minutes; a deadline already past is settled at
// once. The job starts at the deadline when inserter's River client
// carries wassoriver.ExactTimeHook (see QueueExact).
//
// Events written without it (by the Django backend) are found by the
// discovery loop (DiscoverTx), so calling it is not required for
// correctness; it makes the settlement independent of the discovery loop
// and immediate for deadlines closer than the loop's interval.
//
// It returns an error wrapping ErrEventNotFound when tx cannot see the
// event.
func ScheduleEventTx(ctx context.Context, tx pgx.Tx, inserter Inserter, eventID int64) (*ScheduledEvent, error) {
	if inserter == nil {
		return nil, fmt.Errorf("%w: inserter is nil", ErrInvalidParams)
	}
	res := &ScheduledEvent{EventID: eventID}
	err := tx.QueryRow(ctx, scheduleEventSQL, eventID).Scan(&res.Deadline, &res.AlreadySettled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("schedule event %d: %w", eventID, ErrEventNotFound)
	}
	if err != nil {
		return nil, translate(fmt.Sprintf("schedule event %d", eventID), err)
	}
	res.Deadline = res.Deadline.UTC()
	if res.AlreadySettled {
		return res, nil
	}
	args := NewSettleEventArgs(eventID, res.Deadline)
	params := args.insertParams()
	res.Job, err = inserter.InsertTx(ctx, tx, params.Args, params.InsertOpts)
	if err != nil {
		return nil, fmt.Errorf("schedule event %d: insert %s job: %w", eventID, SettleEventKind, err)
	}
	return res, nil
}

// ScheduleEvent is ScheduleEventTx in a transaction of its own, for an
// event that is already committed (a backfill, or a CLI). It commits
// before returning.
func ScheduleEvent(ctx context.Context, db Beginner, inserter Inserter, eventID int64) (*ScheduledEvent, error) {
	var res *ScheduledEvent
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var err error
		res, err = ScheduleEventTx(ctx, tx, inserter, eventID)
		return err
	})
	return res, err
}

// scheduleEventSQL reads an event's current deadline, records it as
// planned (so that discovery does not insert a second job for it) and says
// whether that deadline is already settled. It goes through the events and
// wasso_settlement primary keys.
const scheduleEventSQL = `
WITH ev AS (
    SELECT e.id, wasso_deadline(e.start_datetime, e.fail_minutes) AS deadline
    FROM events e
    WHERE e.id = $1
),
planned AS (
    INSERT INTO wasso_deadline_plan AS p (event_id, deadline, planned_at, source)
    SELECT ev.id, ev.deadline, statement_timestamp(), 'api' FROM ev
    ON CONFLICT (event_id) DO UPDATE
        SET deadline = EXCLUDED.deadline, planned_at = EXCLUDED.planned_at, source = EXCLUDED.source
)
SELECT ev.deadline,
       EXISTS (SELECT 1 FROM wasso_settlement s WHERE s.event_id = ev.id AND s.deadline = ev.deadline)
FROM ev`

// untilDeadline is how long until the job's deadline, on the database
// clock, when the event still has that deadline; zero otherwise (the
// event moved, was deleted, or its deadline passed).
func untilDeadline(ctx context.Context, db DB, args SettleEventArgs) (time.Duration, error) {
	var micros *int64
	err := db.QueryRow(ctx, `
		SELECT (extract(epoch FROM wasso_deadline(start_datetime, fail_minutes) - statement_timestamp()) * 1e6)::bigint
		FROM events
		WHERE id = $1 AND wasso_deadline(start_datetime, fail_minutes) = $2`, args.EventID, args.Deadline).Scan(&micros)
	if errors.Is(err, pgx.ErrNoRows) || micros == nil {
		return 0, nil
	}
	if err != nil {
		return 0, translate(fmt.Sprintf("read deadline of event %d", args.EventID), err)
	}
	return time.Duration(*micros) * time.Microsecond, nil
}

// burstLimit is how many events an attempt of job settles at most. A
// retried job settles its own event only: the batch it failed with may
// have held an event whose settlement fails every time (a trigger that
// errors, a row locked for good), and that event must not keep the others
// from being settled by their own jobs.
func burstLimit(job *river.Job[SettleEventArgs], limit int) int {
	if job.Attempt > 1 {
		return 1
	}
	return limit
}
