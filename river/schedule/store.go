package schedule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
)

// Defaults of StoreConfig.
const (
	// MaxCatchUpDefault is how many missed slots of a MissedAll
	// schedule one pass enqueues at most.
	MaxCatchUpDefault = 100
	// MaxBackfillDefault is how many slots one Backfill may
	// enqueue at most; a larger range is refused, not cut.
	MaxBackfillDefault = 1000
	// PollIntervalDefault is how often the scheduler looks for due
	// schedules when nothing wakes it earlier: it wakes at the earliest
	// next_run_at and on every change of wasso_schedule (NOTIFY), so the
	// poll only bounds how late a slot runs when both fail: a clock that
	// jumped, or a change made while the LISTEN connection was down
	// (which the scheduler polls for every second until it is back). Each
	// poll of an idle leader is one statement.
	PollIntervalDefault = 10 * time.Second
	// PassBatchDefault is how many due schedules a scheduler pass takes
	// in one transaction at most (see Scheduler): large enough that the
	// statements of a batch cost little beside its rows, small enough that
	// the first jobs of a large pass commit early and a batch's locks are
	// held briefly.
	PassBatchDefault = 1000
	// PassBatchMax is the largest StoreConfig.PassBatch: a batch reads
	// the last jobs of its schedules with one River JobListTx, which lists
	// 10,000 jobs at most.
	PassBatchMax = 10_000
	// SlotRetentionDefault is how long the rows of
	// wasso_schedule_slot are kept. A Backfill reaching further back than
	// this could enqueue a slot a second time.
	SlotRetentionDefault = 30 * 24 * time.Hour
)

// StoreConfig configures a Store and the Scheduler that
// runs its schedules.
type StoreConfig struct {
	// DefaultTimeZone is the IANA time zone of schedules created without
	// one. Empty means TimeZoneDefault (UTC); the runner's
	// configuration passes Asia/Seoul.
	DefaultTimeZone string

	// Inserter enqueues the jobs, usually the River client. It may be set
	// later with SetInserter (NewClient does); only RunNow, Backfill and
	// the Scheduler need it.
	Inserter Inserter

	// Kinds are the job kinds schedules may name, with their args types;
	// at least one. A schedule naming another kind is refused when it is
	// written (ErrUnknownKind), since no worker would run its jobs.
	Kinds []Kind

	// Logger receives a line per job enqueued, slot skipped or missed.
	// Nil discards.
	Logger *slog.Logger

	// MaxBackfill: see MaxBackfillDefault.
	MaxBackfill int

	// MaxCatchUp: see MaxCatchUpDefault.
	MaxCatchUp int

	// Now is the clock slots are compared with. Nil means time.Now; tests
	// set it to run passes at chosen instants.
	Now func() time.Time

	// PassBatch: see PassBatchDefault. At most PassBatchMax.
	PassBatch int

	// PollInterval: see PollIntervalDefault.
	PollInterval time.Duration

	// SlotRetention: see SlotRetentionDefault.
	SlotRetention time.Duration
}

// Store writes and reads the schedules of wasso_schedule. Each method
// that writes takes a Beginner and runs in a transaction it begins there:
// given a pool, a transaction of its own that it commits; given the
// caller's pgx.Tx, a savepoint inside it, so that a backend creates a
// schedule with the rows it belongs to, all or nothing, and an error
// rolls back the method's work alone, leaving the caller's transaction
// usable.
//
// Writes take the schedule's row lock (SELECT ... FOR UPDATE): they wait
// for a scheduler pass working on the schedule, and a pass skips a
// schedule that a caller's open transaction has locked, taking it up at
// its next pass once that transaction ends.
type Store struct {
	config   StoreConfig
	kinds    map[string]*Kind
	inserter atomic.Pointer[scheduleInserter]
}

type scheduleInserter struct{ Inserter }

// WithDefaults returns a copy of the config with the zero values of its
// settings replaced by their defaults (Logger and Now are left to
// NewStore).
func (c StoreConfig) WithDefaults() StoreConfig {
	c.DefaultTimeZone = cmp.Or(c.DefaultTimeZone, TimeZoneDefault)
	c.MaxBackfill = cmp.Or(c.MaxBackfill, MaxBackfillDefault)
	c.MaxCatchUp = cmp.Or(c.MaxCatchUp, MaxCatchUpDefault)
	c.PassBatch = cmp.Or(c.PassBatch, PassBatchDefault)
	c.PollInterval = cmp.Or(c.PollInterval, PollIntervalDefault)
	c.SlotRetention = cmp.Or(c.SlotRetention, SlotRetentionDefault)
	return c
}

// NewStore returns a store with config, its zero values replaced
// by their defaults.
func NewStore(config StoreConfig) (*Store, error) {
	config = config.WithDefaults()
	if _, err := compileTimetable(time.Hour, "", config.DefaultTimeZone, time.Time{}); err != nil {
		return nil, fmt.Errorf("%w: DefaultTimeZone: %w", ErrInvalidConfig, err)
	}
	for _, d := range []struct {
		name  string
		value int64
	}{
		{"MaxBackfill", int64(config.MaxBackfill)},
		{"MaxCatchUp", int64(config.MaxCatchUp)},
		{"PassBatch", int64(config.PassBatch)},
		{"PollInterval", int64(config.PollInterval)},
		{"SlotRetention", int64(config.SlotRetention)},
	} {
		if d.value < 0 {
			return nil, fmt.Errorf("%w: schedules: %s must not be negative", ErrInvalidConfig, d.name)
		}
	}
	if config.PassBatch > PassBatchMax {
		return nil, fmt.Errorf("%w: schedules: PassBatch %d is more than %d", ErrInvalidConfig, config.PassBatch, PassBatchMax)
	}
	if config.PollInterval < 10*time.Millisecond {
		return nil, fmt.Errorf("%w: schedules: PollInterval %s is shorter than 10ms", ErrInvalidConfig, config.PollInterval)
	}
	if config.Logger == nil {
		config.Logger = slog.New(slog.DiscardHandler)
	}
	if config.Now == nil {
		config.Now = time.Now
	}
	if len(config.Kinds) == 0 {
		return nil, fmt.Errorf("%w: schedules: Kinds is empty: name the job kinds schedules may run (NewKind)", ErrInvalidConfig)
	}
	s := &Store{config: config, kinds: make(map[string]*Kind, len(config.Kinds))}
	for i := range config.Kinds {
		k := &config.Kinds[i]
		if k.kind == "" || k.typ == nil {
			return nil, fmt.Errorf("%w: schedules: Kinds[%d] was not made by NewKind", ErrInvalidConfig, i)
		}
		if _, dup := s.kinds[k.kind]; dup {
			return nil, fmt.Errorf("%w: schedules: kind %q is listed twice", ErrInvalidConfig, k.kind)
		}
		s.kinds[k.kind] = k
	}
	if config.Inserter != nil {
		s.SetInserter(config.Inserter)
	}
	return s, nil
}

// SetInserter sets what enqueues the jobs, usually the River client,
// which only exists once its config, holding the Scheduler hook, is
// built.
func (s *Store) SetInserter(inserter Inserter) {
	s.inserter.Store(&scheduleInserter{inserter})
}

func (s *Store) getInserter() (Inserter, error) {
	box := s.inserter.Load()
	if box == nil || box.Inserter == nil {
		return nil, fmt.Errorf("%w: schedules: no inserter set (StoreConfig.Inserter or SetInserter)", ErrInvalidConfig)
	}
	return box.Inserter, nil
}

// Kinds lists, sorted, the job kinds schedules may name.
func (s *Store) Kinds() []string {
	kinds := make([]string, 0, len(s.kinds))
	for k := range s.kinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

func (s *Store) now() time.Time { return s.config.Now() }

// check validates sched (defaults already applied) with the store's kinds
// and returns its timetable.
func (s *Store) check(sched *Schedule) (*timetable, error) {
	tt, err := sched.validate()
	if err != nil {
		return nil, err
	}
	kind := s.kinds[sched.Kind]
	if kind == nil {
		return nil, &FieldError{Field: "kind", Err: fmt.Errorf("%w %q (known: %v)", ErrUnknownKind, sched.Kind, s.Kinds())}
	}
	if err := kind.CheckArgs(sched.Args); err != nil {
		return nil, &FieldError{Field: "args", Err: fmt.Errorf("do not fit %s: %w", sched.Kind, err)}
	}
	return tt, nil
}

// Validate checks sched as Create would, defaults filled in, without
// writing anything: for a form that reports errors before saving. The
// one check it cannot make is whether the name is taken.
func (s *Store) Validate(sched Schedule) error {
	sched = sched.withDefaults(s.config.DefaultTimeZone, s.kinds[sched.Kind])
	tt, err := s.check(&sched)
	if err != nil {
		return err
	}
	_, err = firstRun(&sched, tt, s.now())
	return err
}

// firstRun returns the next_run_at of a schedule enabled at now: its first
// slot at or after now (and StartAt), or nil when it has none left before
// ExpiresAt, which is an error for a schedule being enabled.
func firstRun(sched *Schedule, tt *timetable, now time.Time) (*time.Time, error) {
	if !sched.Enabled {
		return nil, nil
	}
	next := tt.atOrAfter(truncMicro(now))
	if next.IsZero() {
		return nil, fieldError("cron", "%q never fires", sched.Cron)
	}
	if !sched.ExpiresAt.IsZero() && next.After(sched.ExpiresAt) {
		return nil, fieldError("expires_at", "%s: no slot is left before it", sched.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	return &next, nil
}

// Create writes a new schedule and returns
// it as stored (defaults filled, NextRunAt computed). Errors:
// *FieldError (ErrInvalidSchedule, ErrUnknownKind),
// ErrExists.
func (s *Store) Create(ctx context.Context, db Beginner, sched Schedule) (*Schedule, error) {
	return scheduleTx(ctx, db, func(tx pgx.Tx) (*Schedule, error) { return s.create(ctx, tx, sched) })
}

// insertScheduleSQL writes a new schedule; the bookkeeping columns keep
// their defaults. A name taken returns no row instead of failing.
const insertScheduleSQL = `
INSERT INTO wasso_schedule (name, kind, args, every_us, cron, time_zone, enabled, queue, priority,
    max_attempts, start_at, expires_at, one_off, description, missed, overlap, catchup_window_us, jitter_us,
    pause_after_failures, next_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $21)
ON CONFLICT (name) DO NOTHING
RETURNING ` + scheduleColumns

func (s *Store) create(ctx context.Context, tx pgx.Tx, sched Schedule) (*Schedule, error) {
	sched = sched.withDefaults(s.config.DefaultTimeZone, s.kinds[sched.Kind])
	tt, err := s.check(&sched)
	if err != nil {
		return nil, err
	}
	now := s.now()
	next, err := firstRun(&sched, tt, now)
	if err != nil {
		return nil, err
	}
	row := tx.QueryRow(ctx, insertScheduleSQL, append(configArgs(&sched), next, now)...)
	created, err := scanSchedule(row)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation) {
			return nil, fmt.Errorf("create schedule %q: %w", sched.Name, ErrExists)
		}
		return nil, scheduleErr(fmt.Sprintf("create schedule %q", sched.Name), err)
	}
	return created, nil
}

// configArgs are the values of the configuration columns, $1 to $19 of
// insertScheduleSQL and updateScheduleSQL.
func configArgs(s *Schedule) []any {
	var every *int64
	if s.Every != 0 {
		us := s.Every.Microseconds()
		every = &us
	}
	var window *int64
	if s.CatchupWindow != 0 {
		us := s.CatchupWindow.Microseconds()
		window = &us
	}
	return []any{s.Name, s.Kind, string(s.Args), every, optString(s.Cron), s.TimeZone, s.Enabled, s.Queue,
		s.Priority, s.MaxAttempts, optTime(s.StartAt), optTime(s.ExpiresAt), s.OneOff, s.Description,
		string(s.Missed), string(s.Overlap), window, s.Jitter.Microseconds(), s.PauseAfterFailures}
}

// Update changes the fields of the schedule named that update sets, and
// returns the schedule as stored. Errors:
// *FieldError, ErrNotFound.
func (s *Store) Update(ctx context.Context, db Beginner, name string, update Update) (*Schedule, error) {
	return scheduleTx(ctx, db, func(tx pgx.Tx) (*Schedule, error) { return s.update(ctx, tx, name, update, nil) })
}

// Enable enables the schedule named: its
// next run is its first slot from now on (slots that passed while it was
// disabled are neither run nor counted missed). Enabling an enabled
// schedule changes nothing.
func (s *Store) Enable(ctx context.Context, db Beginner, name string) (*Schedule, error) {
	return s.Update(ctx, db, name, Update{Enabled: ptrTo(true)})
}

// Disable disables the schedule named: it
// keeps its row and counters, and its next run is cleared. A job already
// enqueued still runs. Disabling an enabled schedule records when
// (Schedule.Paused, with no name and no note: Pause records those);
// disabling a disabled one changes nothing.
func (s *Store) Disable(ctx context.Context, db Beginner, name string) (*Schedule, error) {
	return s.Update(ctx, db, name, Update{Enabled: ptrTo(false)})
}

// Pause disables the schedule named, as Disable does, and records note:
// who paused it and why, at the store's clock (note.At is ignored). Pausing
// a disabled schedule replaces its note. Enabling clears it. Errors:
// *FieldError for "paused.by" or "paused.note" (too long, not one line),
// with nothing written; ErrNotFound.
func (s *Store) Pause(ctx context.Context, db Beginner, name string, note PauseNote) (*Schedule, error) {
	if err := note.validate(); err != nil {
		return nil, err
	}
	return scheduleTx(ctx, db, func(tx pgx.Tx) (*Schedule, error) {
		return s.update(ctx, tx, name, Update{Enabled: ptrTo(false)}, &note)
	})
}

func ptrTo[T any](v T) *T { return &v }

// updateScheduleSQL writes the configuration columns and next_run_at of
// an existing schedule.
const updateScheduleSQL = `
UPDATE wasso_schedule SET kind = $2, args = $3, every_us = $4, cron = $5, time_zone = $6, enabled = $7,
    queue = $8, priority = $9, max_attempts = $10, start_at = $11, expires_at = $12, one_off = $13,
    description = $14, missed = $15, overlap = $16, catchup_window_us = $17, jitter_us = $18,
    pause_after_failures = $19, next_run_at = $20, updated_at = $21,
    paused_at = $22, paused_by = $23, paused_note = $24,
    buffered_slot = CASE WHEN $25 THEN buffered_slot END
WHERE name = $1
RETURNING ` + scheduleColumns

// update applies update to the schedule named. pause, when set, is the
// note of a Pause.
func (s *Store) update(ctx context.Context, tx pgx.Tx, name string, update Update, pause *PauseNote) (*Schedule, error) {
	old, err := lockSchedule(ctx, tx, name)
	if err != nil {
		return nil, err
	}
	sched := update.apply(*old)
	sched = sched.withDefaults(s.config.DefaultTimeZone, s.kinds[sched.Kind])
	tt, err := s.check(&sched)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var next *time.Time
	switch {
	case !sched.Enabled:
	case !old.Enabled || update.retimes():
		if next, err = firstRun(&sched, tt, now); err != nil {
			return nil, err
		}
	case !old.NextRunAt.IsZero():
		// Unchanged timetable: keep the pending slot, even one that is due
		// and not yet run, unless it is now past the expiry.
		if sched.ExpiresAt.IsZero() || !old.NextRunAt.After(sched.ExpiresAt) {
			next = &old.NextRunAt
		} else {
			sched.Enabled = false
		}
	default:
		// Enabled with no next run: a row written by hand.
		if next, err = firstRun(&sched, tt, now); err != nil {
			return nil, err
		}
	}
	// The pause note: cleared on an enabled schedule, set by Pause, set
	// without name or note by a plain disable, kept otherwise (a disabled
	// schedule disabled again, or changed in other ways).
	switch {
	case sched.Enabled:
		sched.Paused = nil
	case pause != nil:
		sched.Paused = &PauseNote{By: pause.By, Note: pause.Note, At: truncMicro(now)}
	case old.Enabled && update.Enabled != nil && !*update.Enabled:
		sched.Paused = &PauseNote{At: truncMicro(now)}
	}
	var pausedAt *time.Time
	var pausedBy, pausedNote *string
	if p := sched.Paused; p != nil {
		pausedAt, pausedBy, pausedNote = &p.At, &p.By, &p.Note
	}
	// A slot waiting for the previous job (OverlapBufferOne) waits on
	// only while the schedule stays enabled, buffering, on the same
	// timetable: disabling, enabling or retiming never leaves a run
	// behind to fire afterwards.
	keepBuffered := old.Enabled && sched.Enabled && sched.Overlap == OverlapBufferOne && !update.retimes()
	row := tx.QueryRow(ctx, updateScheduleSQL, append(configArgs(&sched), next, now, pausedAt, pausedBy, pausedNote, keepBuffered)...)
	updated, err := scanSchedule(row)
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("update schedule %q", name), err)
	}
	return updated, nil
}

// Delete deletes the schedule named and its slot history. Jobs already
// enqueued are not touched.
func (s *Store) Delete(ctx context.Context, db Beginner, name string) error {
	_, err := scheduleTx(ctx, db, func(tx pgx.Tx) (struct{}, error) { return struct{}{}, s.delete(ctx, tx, name) })
	return err
}

// deleteScheduleSQL deletes a schedule; its wasso_schedule_slot rows go
// with it (ON DELETE CASCADE).
const deleteScheduleSQL = `DELETE FROM wasso_schedule WHERE name = $1`

func (s *Store) delete(ctx context.Context, tx pgx.Tx, name string) error {
	tag, err := tx.Exec(ctx, deleteScheduleSQL, name)
	if err != nil {
		return scheduleErr(fmt.Sprintf("delete schedule %q", name), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete schedule %q: %w", name, ErrNotFound)
	}
	return nil
}

// Get returns the schedule named, or an error wrapping
// ErrNotFound. db may be a pool or a transaction.
func (s *Store) Get(ctx context.Context, db DB, name string) (*Schedule, error) {
	sched, err := scanSchedule(db.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM wasso_schedule WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("get schedule %q", name), err)
	}
	return sched, nil
}

// List returns every schedule, by name. db may be a pool or a
// transaction.
func (s *Store) List(ctx context.Context, db DB) ([]Schedule, error) {
	rows, err := db.Query(ctx, `SELECT `+scheduleColumns+` FROM wasso_schedule ORDER BY name`)
	if err != nil {
		return nil, scheduleErr("list schedules", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Schedule, error) {
		s, err := scanSchedule(row)
		if err != nil {
			return Schedule{}, err
		}
		return *s, nil
	})
	if err != nil {
		return nil, scheduleErr("list schedules", err)
	}
	return list, nil
}

// Stats are the counters of one schedule, for metrics: a runner
// exports them as counters labelled by schedule (the values only grow,
// unless the schedule is deleted and created again).
type Stats struct {
	Name    string
	Kind    string
	Enabled bool
	// Runs is TotalRunCount, Skips SkippedCount, Misses MissedCount.
	Runs, Skips, Misses int64
	// LastRunAt and NextRunAt are the schedule's; zero when unset. A
	// NextRunAt well in the past means no scheduler is running.
	LastRunAt, NextRunAt time.Time
}

// Stats returns the counters of every schedule, by name.
func (s *Store) Stats(ctx context.Context, db DB) ([]Stats, error) {
	rows, err := db.Query(ctx, `
SELECT name, kind, enabled, total_run_count, skipped_count, missed_count, last_run_at, next_run_at
FROM wasso_schedule ORDER BY name`)
	if err != nil {
		return nil, scheduleErr("schedule stats", err)
	}
	stats, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Stats, error) {
		var st Stats
		var last, next *time.Time
		err := row.Scan(&st.Name, &st.Kind, &st.Enabled, &st.Runs, &st.Skips, &st.Misses, &last, &next)
		st.LastRunAt, st.NextRunAt = utcOrZero(last), utcOrZero(next)
		return st, err
	})
	if err != nil {
		return nil, scheduleErr("schedule stats", err)
	}
	return stats, nil
}

// Slot is one row of wasso_schedule_slot: a slot a job was
// enqueued for.
type Slot struct {
	Schedule string    `json:"schedule"`
	Slot     time.Time `json:"slot"`
	JobID    int64     `json:"job_id"`
	// Source is "schedule", "backfill" or "run_now".
	Source     string    `json:"source"`
	EnqueuedAt time.Time `json:"enqueued_at"`
}

// Slots returns the latest limit slots of the schedule named, newest
// first (limit <= 0: all that are kept).
func (s *Store) Slots(ctx context.Context, db DB, name string, limit int) ([]Slot, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := db.Query(ctx, `
SELECT schedule_name, slot, coalesce(job_id, 0), source, enqueued_at FROM wasso_schedule_slot
WHERE schedule_name = $1 ORDER BY slot DESC LIMIT $2`, name, lim)
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("slots of schedule %q", name), err)
	}
	slots, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Slot, error) {
		var sl Slot
		err := row.Scan(&sl.Schedule, &sl.Slot, &sl.JobID, &sl.Source, &sl.EnqueuedAt)
		sl.Slot, sl.EnqueuedAt = sl.Slot.UTC(), sl.EnqueuedAt.UTC()
		return sl, err
	})
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("slots of schedule %q", name), err)
	}
	return slots, nil
}

// RunNowResult is a job RunNow enqueued.
type RunNowResult struct {
	// Slot is the instant the job stands for: now, to the microsecond.
	Slot  time.Time
	JobID int64
}

// RunNow enqueues one job of the schedule named now, whether the schedule is enabled or not and whatever its
// overlap policy: the admin's "run now". The slot is now to the
// microsecond, recorded with source run_now. NextRunAt does not move;
// TotalRunCount, LastRunAt and LastJobID do.
func (s *Store) RunNow(ctx context.Context, db Beginner, name string) (*RunNowResult, error) {
	return scheduleTx(ctx, db, func(tx pgx.Tx) (*RunNowResult, error) { return s.runNow(ctx, tx, name) })
}

func (s *Store) runNow(ctx context.Context, tx pgx.Tx, name string) (*RunNowResult, error) {
	inserter, err := s.getInserter()
	if err != nil {
		return nil, err
	}
	sched, err := lockSchedule(ctx, tx, name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	slot := truncMicro(now)
	// Two runs in one microsecond, or a run on the instant of a slot
	// already enqueued: take the next free microsecond.
	for range 1000 {
		jobs, err := enqueueSlots(ctx, tx, inserter, sched, []time.Time{slot}, slotSourceRunNow, now)
		if err != nil {
			return nil, err
		}
		if len(jobs) == 1 {
			if err := recordRuns(ctx, tx, name, jobs, now); err != nil {
				return nil, err
			}
			s.logEnqueued(ctx, sched, jobs, slotSourceRunNow)
			return &RunNowResult{Slot: slot, JobID: jobs[0].jobID}, nil
		}
		slot = slot.Add(time.Microsecond)
	}
	return nil, fmt.Errorf("run schedule %q now: no free slot near %s", name, FormatSlot(now))
}

// BackfillResult says what Backfill did.
type BackfillResult struct {
	// Enqueued are the slots a job was enqueued for, with the jobs.
	Enqueued []RunNowResult
	// Skipped counts the slots of the range that already had a job.
	Skipped int
}

// Backfill enqueues a job for every slot of the schedule named in [from,
// to] that has none yet (wasso_schedule_slot: from the scheduler, a
// RunNow or an earlier Backfill), whether the
// schedule is enabled or not and whatever its policies. Slots before
// StartAt or after ExpiresAt are not slots. to must not be in the future
// (the scheduler enqueues those), and the range may hold at most
// StoreConfig.MaxBackfill slots: a larger one is refused with a
// *FieldError for "to". Backfilling the same range twice enqueues
// each slot once.
func (s *Store) Backfill(ctx context.Context, db Beginner, name string, from, to time.Time) (*BackfillResult, error) {
	return scheduleTx(ctx, db, func(tx pgx.Tx) (*BackfillResult, error) { return s.backfill(ctx, tx, name, from, to) })
}

func (s *Store) backfill(ctx context.Context, tx pgx.Tx, name string, from, to time.Time) (*BackfillResult, error) {
	inserter, err := s.getInserter()
	if err != nil {
		return nil, err
	}
	now := s.now()
	switch {
	case from.IsZero():
		return nil, fieldError("from", "must be set")
	case to.Before(from):
		return nil, fieldError("to", "%s is before from %s", FormatSlot(to), FormatSlot(from))
	case to.After(now):
		return nil, fieldError("to", "%s is in the future: the scheduler enqueues those slots", FormatSlot(to))
	}
	sched, err := lockSchedule(ctx, tx, name)
	if err != nil {
		return nil, err
	}
	tt, err := sched.validate()
	if err != nil {
		return nil, fmt.Errorf("backfill schedule %q: stored schedule is invalid: %w", name, err)
	}
	if !sched.ExpiresAt.IsZero() && sched.ExpiresAt.Before(to) {
		to = sched.ExpiresAt
	}
	var slots []time.Time
	for slot := tt.atOrAfter(from); !slot.IsZero() && !slot.After(to); slot = tt.next(slot) {
		if len(slots) == s.config.MaxBackfill {
			return nil, fieldError("to", "the range holds more than %d slots (MaxBackfill)", s.config.MaxBackfill)
		}
		slots = append(slots, slot)
	}
	jobs, err := enqueueSlots(ctx, tx, inserter, sched, slots, slotSourceBackfill, now)
	if err != nil {
		return nil, err
	}
	if err := recordRuns(ctx, tx, name, jobs, now); err != nil {
		return nil, err
	}
	s.logEnqueued(ctx, sched, jobs, slotSourceBackfill)
	res := &BackfillResult{Skipped: len(slots) - len(jobs), Enqueued: make([]RunNowResult, len(jobs))}
	for i, j := range jobs {
		res.Enqueued[i] = RunNowResult{Slot: j.slot, JobID: j.jobID}
	}
	return res, nil
}

// recordRunsSQL counts jobs enqueued outside the scheduler's timetable
// (RunNow, Backfill); next_run_at stays.
const recordRunsSQL = `
UPDATE wasso_schedule SET total_run_count = total_run_count + $2,
    last_run_at = greatest(last_run_at, $3), last_job_id = $4, updated_at = $5
WHERE name = $1`

func recordRuns(ctx context.Context, tx pgx.Tx, name string, jobs []slotJob, now time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	last := jobs[len(jobs)-1]
	if _, err := tx.Exec(ctx, recordRunsSQL, name, len(jobs), last.slot, last.jobID, now); err != nil {
		return scheduleErr(fmt.Sprintf("record runs of schedule %q", name), err)
	}
	return nil
}

// Where a slot's job came from (wasso_schedule_slot.source).
const (
	slotSourceSchedule = "schedule"
	slotSourceBackfill = "backfill"
	slotSourceRunNow   = "run_now"
)

// slotJob is a slot and the job enqueued for it.
type slotJob struct {
	slot  time.Time
	jobID int64
}

// claimSlotsSQL records the slots of a schedule; a slot that already has
// a row (from any source) is not returned, so its job is not enqueued
// again. The primary key makes this hold across concurrent transactions
// too: the second waits for the first and then does nothing.
const claimSlotsSQL = `
INSERT INTO wasso_schedule_slot (schedule_name, slot, source, enqueued_at)
SELECT $1, s, $3, $4 FROM unnest($2::timestamptz[]) AS s
ON CONFLICT (schedule_name, slot) DO NOTHING
RETURNING slot`

// setSlotJobsSQL records the job of each slot claimed.
const setSlotJobsSQL = `
UPDATE wasso_schedule_slot AS ss SET job_id = u.job_id
FROM unnest($2::timestamptz[], $3::bigint[]) AS u (slot, job_id)
WHERE ss.schedule_name = $1 AND ss.slot = u.slot`

// enqueueSlots claims slots of sched in wasso_schedule_slot and enqueues
// a job for each one claimed, in tx. It returns the jobs by slot.
func enqueueSlots(ctx context.Context, tx pgx.Tx, inserter Inserter, sched *Schedule, slots []time.Time, source string, now time.Time) ([]slotJob, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, claimSlotsSQL, sched.Name, slots, source, now)
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("claim slots of schedule %q", sched.Name), err)
	}
	claimed, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("claim slots of schedule %q", sched.Name), err)
	}
	if len(claimed) == 0 {
		return nil, nil
	}
	slices.SortFunc(claimed, time.Time.Compare)
	params := make([]river.InsertManyParams, len(claimed))
	for i, slot := range claimed {
		claimed[i] = slot.UTC()
		params[i] = sched.insertParams(claimed[i])
	}
	results, err := inserter.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: insert %d %s jobs: %w", sched.Name, len(params), sched.Kind, err)
	}
	jobs := make([]slotJob, len(claimed))
	ids := make([]int64, len(claimed))
	for i, r := range results {
		jobs[i] = slotJob{slot: claimed[i], jobID: r.Job.ID}
		ids[i] = r.Job.ID
	}
	if _, err := tx.Exec(ctx, setSlotJobsSQL, sched.Name, claimed, ids); err != nil {
		return nil, scheduleErr(fmt.Sprintf("record jobs of schedule %q", sched.Name), err)
	}
	return jobs, nil
}

func (s *Store) logEnqueued(ctx context.Context, sched *Schedule, jobs []slotJob, source string) {
	for _, j := range jobs {
		s.config.Logger.InfoContext(ctx, "schedule enqueued job",
			slog.String("schedule", sched.Name), slog.String("kind", sched.Kind),
			slog.String("slot", FormatSlot(j.slot)), slog.Int64("job_id", j.jobID), slog.String("source", source))
	}
}

// scheduleColumns are the columns scanSchedule reads, in its order.
const scheduleColumns = `name, kind, args, every_us, cron, time_zone, enabled, queue, priority, max_attempts,
    start_at, expires_at, one_off, description, missed, overlap, last_run_at, last_job_id, next_run_at,
    total_run_count, skipped_count, missed_count, created_at, updated_at, paused_at, paused_by, paused_note,
    catchup_window_us, jitter_us, pause_after_failures, buffered_slot`

func scanSchedule(row pgx.Row) (*Schedule, error) {
	var (
		s                             Schedule
		args                          []byte
		every, lastJob                *int64
		expr                          *string
		start, expires, lastRun, next *time.Time
		missed, overlap               string
		priority                      int16
		createdAt, updatedAt          time.Time
		pausedAt                      *time.Time
		pausedBy, pausedNote          *string
		window                        *int64
		jitter                        int64
		buffered                      *time.Time
	)
	err := row.Scan(&s.Name, &s.Kind, &args, &every, &expr, &s.TimeZone, &s.Enabled, &s.Queue, &priority,
		&s.MaxAttempts, &start, &expires, &s.OneOff, &s.Description, &missed, &overlap, &lastRun, &lastJob,
		&next, &s.TotalRunCount, &s.SkippedCount, &s.MissedCount, &createdAt, &updatedAt,
		&pausedAt, &pausedBy, &pausedNote, &window, &jitter, &s.PauseAfterFailures, &buffered)
	if err != nil {
		return nil, err
	}
	if window != nil {
		s.CatchupWindow = time.Duration(*window) * time.Microsecond
	}
	s.Jitter = time.Duration(jitter) * time.Microsecond
	s.BufferedSlot = utcOrZero(buffered)
	if pausedAt != nil {
		s.Paused = &PauseNote{At: pausedAt.UTC()}
		if pausedBy != nil {
			s.Paused.By = *pausedBy
		}
		if pausedNote != nil {
			s.Paused.Note = *pausedNote
		}
	}
	s.Args = json.RawMessage(args)
	if every != nil {
		s.Every = time.Duration(*every) * time.Microsecond
	}
	if expr != nil {
		s.Cron = *expr
	}
	if lastJob != nil {
		s.LastJobID = *lastJob
	}
	s.Priority = int(priority)
	s.Missed, s.Overlap = MissedPolicy(missed), OverlapPolicy(overlap)
	s.StartAt, s.ExpiresAt, s.LastRunAt, s.NextRunAt = utcOrZero(start), utcOrZero(expires), utcOrZero(lastRun), utcOrZero(next)
	s.CreatedAt, s.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	return &s, nil
}

// lockScheduleSQL reads a schedule and locks its row until the
// transaction ends.
const lockScheduleSQL = `SELECT ` + scheduleColumns + ` FROM wasso_schedule WHERE name = $1 FOR UPDATE`

func lockSchedule(ctx context.Context, tx pgx.Tx, name string) (*Schedule, error) {
	sched, err := scanSchedule(tx.QueryRow(ctx, lockScheduleSQL, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("lock schedule %q", name), err)
	}
	return sched, nil
}

func scheduleTx[T any](ctx context.Context, db Beginner, f func(tx pgx.Tx) (T, error)) (T, error) {
	var out T
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var err error
		out, err = f(tx)
		return err
	})
	return out, err
}

func utcOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
