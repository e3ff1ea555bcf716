package attendance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// SweepKind is the River job kind of the periodic sweep.
const SweepKind = "attendance.sweep"

// SweepIntervalDefault is how often the periodic sweep runs by default,
// as the old Celery beat schedule did.
const SweepIntervalDefault = 5 * time.Minute

// SweepArgs are the arguments of the attendance.sweep job. The zero value
// sweeps with the worker's configured lookback.
type SweepArgs struct {
	// Lookback overrides the worker's lookback for this run, for a manual
	// catch-up after an outage longer than the default window. Zero keeps
	// the worker's.
	Lookback time.Duration `json:"lookback,omitempty"`
}

// Kind is the River job kind.
func (SweepArgs) Kind() string { return SweepKind }

// SweepOutput is recorded as the sweep job's output.
type SweepOutput struct {
	CreatedRows     int `json:"created_rows"`
	ProcessedEvents int `json:"processed_events"`
	UpdatedRows     int `json:"updated_rows"`
	// RepairedRows counts the settlement rows Reconcile removed from above
	// a check-in committed late.
	RepairedRows int `json:"repaired_rows"`
	// PrunedRows counts the bookkeeping rows Prune deleted.
	PrunedRows int `json:"pruned_rows"`
}

// FollowUpFunc runs inside each settlement transaction, after a batch of
// events is settled and before it commits, to insert the jobs that follow
// from the settlement (such as notifying the members just marked absent).
// An error rolls the batch back.
type FollowUpFunc func(ctx context.Context, tx pgx.Tx, batch *SettleResult) error

// SweepConfig configures a SweepWorker.
type SweepConfig struct {
	// BatchSize is how many events are settled per transaction. Zero means
	// SettleDue's default (see SettleParams.Limit).
	BatchSize int
	// FollowUp, if set, runs in each batch's transaction.
	FollowUp FollowUpFunc
	// Logger receives one line per sweep. Nil discards logs.
	Logger *slog.Logger
	// Lookback is how old a deadline may be and still be settled. Zero
	// means LookbackDefault.
	Lookback time.Duration
	// Parallel is how many batches a sweep settles at once, each on a
	// connection of its own (SettleParams.Parallel), for a backlog. Zero
	// means ParallelDefault.
	Parallel int
	// Timeout bounds one sweep. Zero keeps River's default job timeout.
	Timeout time.Duration
}

func (c *SweepConfig) validate() error {
	if c.BatchSize < 0 {
		return fmt.Errorf("%w: batch size %d must not be negative", ErrInvalidParams, c.BatchSize)
	}
	if c.Lookback < 0 {
		return fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidParams, c.Lookback)
	}
	if c.Parallel < 0 {
		return fmt.Errorf("%w: parallel %d must not be negative", ErrInvalidParams, c.Parallel)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: timeout %s must not be negative", ErrInvalidParams, c.Timeout)
	}
	return nil
}

// SweepWorker works attendance.sweep jobs: it settles every due event, a
// batch per transaction, records the counts as the job's output and logs
// them in one line.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]

	config SweepConfig
	db     Beginner
}

// NewSweepWorker returns a SweepWorker settling events in db (usually the
// *pgxpool.Pool the River client uses). It returns an error naming the
// field when the config is out of range.
func NewSweepWorker(db Beginner, config SweepConfig) (*SweepWorker, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: database is nil", ErrInvalidParams)
	}
	if err := config.validate(); err != nil {
		return nil, err
	}
	if config.Logger == nil {
		config.Logger = slog.New(slog.DiscardHandler)
	}
	return &SweepWorker{config: config, db: db}, nil
}

// Timeout is the configured sweep timeout (zero: River's default).
func (w *SweepWorker) Timeout(*river.Job[SweepArgs]) time.Duration { return w.config.Timeout }

// Work settles the due events. Args that can never succeed cancel the job
// at once (it is visible as cancelled, with the error) instead of being
// retried.
func (w *SweepWorker) Work(ctx context.Context, job *river.Job[SweepArgs]) error {
	if job.Args.Lookback < 0 {
		return river.JobCancel(fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidParams, job.Args.Lookback))
	}
	lookback := w.config.Lookback
	if job.Args.Lookback > 0 {
		lookback = job.Args.Lookback
	}
	start := time.Now()
	res, err := SettleDueFunc(ctx, w.db, SettleParams{Limit: w.config.BatchSize, Lookback: lookback, Parallel: w.config.Parallel}, w.config.FollowUp)
	var repaired, pruned int
	if err == nil {
		// Repair after settling, so that settlements this sweep made are
		// checked too, then drop the bookkeeping no sweep needs any more.
		var rec *ReconcileResult
		rec, err = Reconcile(ctx, w.db, SettleParams{Lookback: lookback})
		if rec != nil {
			repaired = rec.RepairedRows
			for _, r := range rec.Repairs {
				w.config.Logger.WarnContext(ctx, "check-in restored above a settlement row",
					slog.Int64("job_id", job.ID), slog.Int64("event_id", r.EventID),
					slog.Int64("generation_mapping_id", r.MappingID), slog.Bool("still_absent", r.StillAbsent))
			}
		}
	}
	if err == nil {
		var p *PruneResult
		p, err = Prune(ctx, w.db, SettleParams{Lookback: lookback})
		if p != nil {
			pruned = p.Settlements + p.Plans
		}
	}
	out := SweepOutput{
		CreatedRows:     res.CreatedRows,
		ProcessedEvents: res.ProcessedEvents,
		UpdatedRows:     res.UpdatedRows,
		RepairedRows:    repaired,
		PrunedRows:      pruned,
	}
	attrs := []any{
		slog.Int64("job_id", job.ID),
		slog.Int("processed_events", out.ProcessedEvents),
		slog.Int("updated_rows", out.UpdatedRows),
		slog.Int("created_rows", out.CreatedRows),
		slog.Int("repaired_rows", out.RepairedRows),
		slog.Int("pruned_rows", out.PrunedRows),
		slog.Duration("duration", time.Since(start)),
	}
	if res.WaitedWriters > 0 {
		attrs = append(attrs, slog.Int("waited_writers", res.WaitedWriters), slog.Int("writer_wait_timeouts", res.WriterWaitTimeouts))
	}
	if err != nil {
		w.config.Logger.ErrorContext(ctx, "attendance sweep failed", append(attrs, slog.String("error", err.Error()))...)
		return fmt.Errorf("sweep: %w", err)
	}
	if err := river.RecordOutput(ctx, out); err != nil {
		return fmt.Errorf("record sweep output: %w", err)
	}
	w.config.Logger.InfoContext(ctx, "attendance sweep", attrs...)
	return nil
}

// PeriodicSweepID identifies the sweep among a client's periodic jobs.
const PeriodicSweepID = "attendance.sweep"

// PeriodicSweep returns the periodic job that enqueues an attendance.sweep
// every interval, and once when a runner becomes leader. The jobs are
// unique per interval, so a restart, a leadership change or several
// runners never queue two sweeps for one period. Interval zero means
// SweepIntervalDefault; a negative one is an error.
func PeriodicSweep(interval time.Duration) (*river.PeriodicJob, error) {
	if interval < 0 {
		return nil, fmt.Errorf("%w: sweep interval %s must be positive", ErrInvalidParams, interval)
	}
	if interval == 0 {
		interval = SweepIntervalDefault
	}
	if interval < time.Second {
		return nil, fmt.Errorf("%w: sweep interval %s is shorter than one second", ErrInvalidParams, interval)
	}
	return river.NewPeriodicJob(
		river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) {
			return SweepArgs{}, &river.InsertOpts{
				UniqueOpts: river.UniqueOpts{ByPeriod: interval},
			}
		},
		&river.PeriodicJobOpts{ID: PeriodicSweepID, RunOnStart: true},
	), nil
}
