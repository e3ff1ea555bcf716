package schedule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/internal/leaderloop"
)

// NotifyChannel is the channel the wasso_schedule trigger notifies
// on every insert, update and delete, with "schema.name" as the payload.
const NotifyChannel = "wasso_schedule"

// scheduleErrorBackoff is how long a schedule whose pass failed (its job
// would not insert: a kind the leader's client does not register, a
// queue name River refuses) is left out of the passes, so that one broken
// schedule costs a log line per backoff, not per poll, and does not hold
// up the others.
const scheduleErrorBackoff = 30 * time.Second

// slotPruneInterval is how often the loop deletes wasso_schedule_slot
// rows older than StoreConfig.SlotRetention.
const slotPruneInterval = time.Hour

// Scheduler turns the slots of the schedules of a Store into River
// jobs, on the River leader only.
//
// It is a River hook
// (rivertype.HookPeriodicJobsStart): River calls Start on the client just
// elected leader, with a context it cancels when that client stops or
// loses leadership, so exactly one runner schedules at a time and fails
// over with River's own election. Add it to the River client's Hooks.
//
// The loop runs a pass every PollInterval, at the earliest next_run_at
// when that comes sooner, and as soon as a NOTIFY on
// NotifyChannel names a schedule of its own schema (a dedicated
// connection of the pool LISTENs; when it drops, polling goes on and the
// listener reconnects). A pass takes the due schedules one transaction
// each:
//
//  1. SELECT ... FOR UPDATE SKIP LOCKED the schedule whose next_run_at is
//     the earliest at or before now;
//  2. choose the slots to run by its MissedPolicy (a slot is on time until
//     slot + min(gap to the following slot, MissedGrace));
//  3. with OverlapSkip, skip them all (SkippedCount) while its last job
//     is still available, pending, scheduled, running or retryable;
//  4. claim the slots in wasso_schedule_slot (ON CONFLICT DO NOTHING) and
//     insert a job for each slot claimed (InsertManyTx);
//  5. advance next_run_at with a compare-and-set on its old value, with
//     last_run_at, last_job_id and the counters; a one-off schedule that
//     enqueued, or one whose next slot is past its expiry, is disabled.
//
// The row lock, the compare-and-set and the slot table's primary key each
// make a slot's job unique on their own: two loops running at once (a
// leadership handover, a second client with a stale view) enqueue a slot
// once. Each job's metadata carries {"schedule": name, "slot": instant}.
//
// It is not a River periodic job, nor does it use River's in-memory
// periodic jobs, so that schedules can be written at run time, by any
// process, in a transaction, and survive a restart with their last slot.
type Scheduler struct {
	river.HookDefaults

	pool       *pgxpool.Pool
	listenPool *pgxpool.Pool // ListenOn; nil: pool
	store      *Store
	loop       leaderloop.Loop

	// listenerPID is the backend pid of the LISTEN connection, zero while
	// there is none (tests kill it).
	listenerPID atomic.Uint32
	// sleeping is how long the loop chose to sleep after its last pass,
	// zero during a pass (tests wait for the loop to be idle).
	sleeping atomic.Int64
	// buffering is set while a slot waits for its previous job to finish
	// (OverlapBufferOne): the loop then looks every bufferRecheck.
	buffering atomic.Bool

	passMu    sync.Mutex           // one pass at a time; guards the two below
	backoff   map[string]time.Time // schedule name -> not before
	lastPrune time.Time

	// defaults, when set (SeedWhenLeading), returns the schedules seeded
	// (Seed) before the first pass. seeded records that seeding
	// succeeded.
	defaults func(now time.Time) []Schedule
	seeded   bool
}

// NewScheduler returns a Scheduler of store's schedules, working on pool.
// The store needs an inserter (StoreConfig.Inserter or
// SetInserter) before the first pass.
func NewScheduler(pool *pgxpool.Pool, store *Store) (*Scheduler, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: scheduler: pool is nil", ErrInvalidConfig)
	}
	if store == nil {
		return nil, fmt.Errorf("%w: scheduler: store is nil", ErrInvalidConfig)
	}
	return &Scheduler{pool: pool, store: store, backoff: map[string]time.Time{}}, nil
}

// Store returns the store the scheduler runs.
func (s *Scheduler) Store() *Store { return s.store }

// SeedWhenLeading makes the loop seed the schedules defaults returns
// (Seed) before its first pass on each client that becomes leader, and
// retry at each pass until seeding succeeds: a deployment's default
// schedules then exist without a separate setup step, and seeding stays
// once ever per schedule. Call it before the client starts.
func (s *Scheduler) SeedWhenLeading(defaults func(now time.Time) []Schedule) {
	s.defaults = defaults
}

// ListenOn makes the loop LISTEN on a connection of pool rather than of
// the pool it works on: a pool of direct connections when the other sits
// behind a connection pooler in transaction mode, where LISTEN cannot
// work. Call it before the client starts.
func (s *Scheduler) ListenOn(pool *pgxpool.Pool) { s.listenPool = pool }

// Start starts the loop in ctx and returns at once. River calls it on the
// new leader (see Scheduler); a loop still running from an earlier call is
// stopped first.
func (s *Scheduler) Start(ctx context.Context, _ *rivertype.HookPeriodicJobsStartParams) error {
	s.loop.Start(ctx, s.Run)
	return nil
}

// Stop stops the loop started by Start, if any, and waits for it: a pass
// in progress is rolled back by its cancelled context.
func (s *Scheduler) Stop() { s.loop.Stop() }

// Wait returns once the loop started by Start, if any, has returned, or
// when ctx is done: River's Stop cancels the loop's context but does not
// wait for hooks' goroutines.
func (s *Scheduler) Wait(ctx context.Context) error { return s.loop.Wait(ctx, "scheduler") }

// Run runs passes until ctx is done; see Scheduler. Errors are logged and
// the next pass retries.
func (s *Scheduler) Run(ctx context.Context) {
	cfg := &s.store.config
	cfg.Logger.InfoContext(ctx, "scheduler started", slog.Duration("poll_interval", cfg.PollInterval))
	defer cfg.Logger.InfoContext(context.WithoutCancel(ctx), "scheduler stopped")

	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.listen(ctx, wake) })

	timer := time.NewTimer(0)
	defer timer.Stop()
	due := true // the first pass runs at once
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-wake:
			due = true
		}
		s.sleeping.Store(0)
		if s.defaults != nil && !s.seeded {
			// Seeding is idempotent and creates a schedule only once ever
			// (an operator's removal or edit sticks); a failure is retried
			// at the next pass.
			if _, err := Seed(ctx, s.pool, s.store, s.defaults(s.store.now())); err != nil {
				if ctx.Err() == nil {
					cfg.Logger.ErrorContext(ctx, "seeding the default schedules failed", slog.String("error", err.Error()))
				}
			} else {
				s.seeded, due = true, true
			}
		}
		passNow := s.store.now()
		var (
			next    *time.Time
			nextErr error
		)
		if !due {
			// The fallback poll, with nothing known to be due: one
			// statement looks, and a pass runs only if a schedule came
			// due meanwhile (a change whose NOTIFY was lost, a clock that
			// jumped). An idle runner costs one round trip a poll.
			next, nextErr = s.nextRun(ctx)
			due = nextErr != nil || (next != nil && !next.After(passNow)) || s.buffering.Load()
		}
		if due {
			if _, err := s.runPass(ctx, passNow); err != nil && ctx.Err() == nil {
				cfg.Logger.ErrorContext(ctx, "scheduler pass failed", slog.String("error", err.Error()))
			}
			next, nextErr = s.nextRun(ctx)
		}
		var wait time.Duration
		wait, due = s.untilNext(passNow, next, nextErr)
		s.sleeping.Store(int64(wait))
		timer.Reset(wait)
	}
}

// untilNext returns how long to sleep after a pass run as of passNow, and
// whether the wait ends at a schedule's next run: until next, the earliest
// next_run_at of the schedules not backed off (nextRun's answer), or the
// poll (see pollInterval) if that is sooner. A next_run_at that came due after
// passNow, while the pass ran (it took the schedules due at passNow),
// runs at once. One already due at passNow that the pass left belongs to
// a schedule locked by a transaction of its own (a caller's Update in its own transaction):
// its commit will NOTIFY, so the loop does not spin on it meanwhile.
func (s *Scheduler) untilNext(passNow time.Time, next *time.Time, err error) (time.Duration, bool) {
	poll := s.pollInterval()
	if err != nil || next == nil || !next.After(passNow) {
		return poll, false
	}
	wait := max(next.Sub(s.store.now()), 0)
	if wait >= poll {
		return poll, false
	}
	return wait, true
}

// pollInterval is how long the loop sleeps when no schedule comes due
// sooner: PollInterval while the LISTEN connection is up, since every
// change wakes the loop then, and at most scheduleListenerLostPoll while
// it is down.
func (s *Scheduler) pollInterval() time.Duration {
	poll := s.store.config.PollInterval
	if s.listenerPID.Load() == 0 {
		poll = min(poll, scheduleListenerLostPoll)
	}
	if s.buffering.Load() {
		poll = min(poll, bufferRecheck)
	}
	return poll
}

// scheduleListenerLostPoll is the longest poll while the LISTEN connection
// is down.
const scheduleListenerLostPoll = time.Second

// nextRunSQL is the earliest next run, a scan of the first entries of
// wasso_schedule_next_run_at_idx.
const nextRunSQL = `SELECT min(next_run_at) FROM wasso_schedule WHERE enabled AND NOT (name = ANY($1))`

// nextRun is the earliest next_run_at of the schedules not backed off, nil
// when none is enabled.
func (s *Scheduler) nextRun(ctx context.Context) (*time.Time, error) {
	s.passMu.Lock()
	exclude := s.backedOff(s.store.now())
	s.passMu.Unlock()
	var next *time.Time
	if err := s.pool.QueryRow(ctx, nextRunSQL, exclude).Scan(&next); err != nil {
		return nil, scheduleErr("find the next schedule run", err)
	}
	return next, nil
}

// scheduleListenRetry is how long the listener waits before it connects
// again after losing its connection; the loop polls every
// scheduleListenerLostPoll meanwhile.
const scheduleListenRetry = time.Second

// listen keeps a connection LISTENing on NotifyChannel (pgxlisten) and
// signals wake for each notification about a schedule of this store's
// schema, once each time LISTEN starts (a change may have come in while
// there was no listener), and when the connection is lost, so that the
// loop polls at the shorter interval until the listener is back. It
// returns when ctx is done.
//
// The connection is taken out of the pool (Hijack) and closed at the end:
// a connection still LISTENing would hand notifications to whoever got it
// next.
func (s *Scheduler) listen(ctx context.Context, wake chan<- struct{}) {
	logger := s.store.config.Logger
	var prefix string // set by Connect, read by the handler: one goroutine
	listener := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			pooled, err := cmp.Or(s.listenPool, s.pool).Acquire(ctx)
			if err != nil {
				return nil, fmt.Errorf("acquire listener connection: %w", err)
			}
			conn := pooled.Hijack()
			var schema string
			if err := conn.QueryRow(ctx, scheduleSchemaSQL).Scan(&schema); err != nil {
				_ = conn.Close(ctx)
				return nil, scheduleErr("find the schema of wasso_schedule", err)
			}
			prefix = schema + "."
			return conn, nil
		},
		LogError: func(ctx context.Context, err error) {
			s.listenerPID.Store(0)
			if ctx.Err() != nil {
				return
			}
			signalWake(wake)
			logger.WarnContext(ctx, "scheduler listener lost; polling until it is back",
				slog.String("error", err.Error()), slog.Duration("retry_in", scheduleListenRetry))
		},
		ReconnectDelay: scheduleListenRetry,
	}
	listener.Handle(NotifyChannel, scheduleNotifyHandler{
		listening: func(conn *pgx.Conn) {
			s.listenerPID.Store(conn.PgConn().PID())
			signalWake(wake)
		},
		notified: func(payload string) {
			if strings.HasPrefix(payload, prefix) {
				signalWake(wake)
			}
		},
	})
	_ = listener.Listen(ctx)
	s.listenerPID.Store(0)
}

// scheduleNotifyHandler hands the listener's events to the loop:
// HandleBacklog runs each time LISTEN has started on a new connection.
type scheduleNotifyHandler struct {
	listening func(conn *pgx.Conn)
	notified  func(payload string)
}

func (h scheduleNotifyHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.notified(n.Payload)
	return nil
}

func (h scheduleNotifyHandler) HandleBacklog(_ context.Context, _ string, conn *pgx.Conn) error {
	h.listening(conn)
	return nil
}

// scheduleSchemaSQL names the schema search_path finds wasso_schedule in:
// the trigger's payload starts with it (TG_TABLE_SCHEMA).
const scheduleSchemaSQL = `
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = 'wasso_schedule'::regclass`

func signalWake(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// PassResult says what one pass did.
type PassResult struct {
	// Schedules counts the schedules the pass advanced.
	Schedules int
	// Enqueued, Skipped and Missed count slots: jobs enqueued, slots
	// skipped by OverlapSkip, slots missed.
	Enqueued, Skipped, Missed int
	// Failed counts the schedules whose transaction failed; they are left
	// out of the passes for a while (logged).
	Failed int
}

// RunOnce runs one pass at the store's clock (see Scheduler).
func (s *Scheduler) RunOnce(ctx context.Context) (*PassResult, error) {
	return s.runPass(ctx, s.store.now())
}

// runPass runs one pass as if the time were now: tests call it at chosen
// instants.
func (s *Scheduler) runPass(ctx context.Context, now time.Time) (*PassResult, error) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	res := &PassResult{}
	inserter, err := s.store.getInserter()
	if err != nil {
		return res, err
	}
	exclude := s.backedOff(now)
	if err := s.releaseBuffered(ctx, inserter, now, exclude, res); err != nil {
		return res, err
	}
	for {
		var out *scheduleOutcome
		err := commitDespiteCancel(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			out, err = s.store.runDueTx(ctx, tx, inserter, now, exclude)
			return err
		})
		if out == nil && err == nil {
			break // nothing left due
		}
		if out == nil {
			return res, err
		}
		exclude = append(exclude, out.name)
		switch {
		case errors.Is(err, errSlotRaced):
			// Another loop advanced it first: nothing to do.
			continue
		case err != nil:
			if ctx.Err() != nil {
				return res, err
			}
			res.Failed++
			s.backoff[out.name] = now.Add(scheduleErrorBackoff)
			s.store.config.Logger.ErrorContext(ctx, "schedule failed; retrying later",
				slog.String("schedule", out.name), slog.String("error", err.Error()),
				slog.Duration("retry_in", scheduleErrorBackoff))
			continue
		}
		delete(s.backoff, out.name)
		if !out.buffered.IsZero() {
			s.buffering.Store(true)
		}
		res.Schedules++
		res.Enqueued += len(out.jobs)
		res.Skipped += len(out.skipped)
		res.Missed += int(out.missed)
		s.store.logOutcome(ctx, out)
	}
	if now.Sub(s.lastPrune) >= slotPruneInterval {
		if _, err := s.pool.Exec(ctx, pruneSlotsSQL, now.Add(-s.store.config.SlotRetention)); err != nil {
			return res, scheduleErr("prune schedule slots", err)
		}
		s.lastPrune = now
	}
	return res, nil
}

// releaseBuffered enqueues, in one transaction, the slots waiting for a
// previous job that has now finished (OverlapBufferOne), and records
// whether some still wait, so that the loop looks again within
// bufferRecheck.
func (s *Scheduler) releaseBuffered(ctx context.Context, inserter Inserter, now time.Time, exclude []string, res *PassResult) error {
	var (
		released []releasedJob
		waiting  bool
	)
	err := commitDespiteCancel(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		released, waiting, err = s.store.releaseBuffered(ctx, tx, inserter, now, exclude)
		return err
	})
	if err != nil {
		return err
	}
	s.buffering.Store(waiting)
	for _, r := range released {
		res.Enqueued++
		s.store.logEnqueued(ctx, r.sched, []slotJob{r.job}, slotSourceSchedule)
	}
	return nil
}

// bufferRecheck is the longest the loop sleeps while a slot waits for its
// previous job to finish (OverlapBufferOne): the slot's job is enqueued
// within about this long of that job finishing.
const bufferRecheck = time.Second

// commitDespiteCancel runs f in a transaction of pool and commits it when
// f succeeds, even if ctx is cancelled meanwhile (a shutdown, a lost
// leadership): a pass whose work is done commits it and logs it, rather
// than leave a commit whose outcome it cannot know. The commit gets
// commitTimeout.
func commitDespiteCancel(ctx context.Context, pool *pgxpool.Pool, f func(tx pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		rollbackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		defer cancel()
		_ = tx.Rollback(rollbackCtx)
		return err
	}
	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	return tx.Commit(commitCtx)
}

// commitTimeout bounds the commit (or rollback) of a pass's transaction
// once its context is cancelled.
const commitTimeout = 5 * time.Second

// pruneSlotsSQL deletes the slot rows past their retention, through
// wasso_schedule_slot_enqueued_at_idx.
const pruneSlotsSQL = `DELETE FROM wasso_schedule_slot WHERE enqueued_at < $1`

// backedOff returns the schedules left out of passes at now.
func (s *Scheduler) backedOff(now time.Time) []string {
	names := []string{}
	for name, until := range s.backoff {
		if now.Before(until) {
			names = append(names, name)
		} else {
			delete(s.backoff, name)
		}
	}
	return names
}

// errSlotRaced is returned when the compare-and-set of next_run_at finds
// the row changed: the transaction is rolled back.
var errSlotRaced = errors.New("schedule advanced by another pass")

// scheduleOutcome is what one schedule's transaction did.
type scheduleOutcome struct {
	name     string
	sched    *Schedule
	jobs     []slotJob
	skipped  []time.Time
	blocker  int64 // the job OverlapSkip waited for
	state    string
	missed   int64
	missFrom time.Time // first and last missed slots
	missTo   time.Time
	next     time.Time // zero: disabled
	disabled string    // why, when disabled by this pass
	buffered time.Time // the slot left waiting (OverlapBufferOne)
	canceled int64     // the job cancelled (OverlapCancelOther)
	paused   string    // the note, when paused after failures
}

// dueScheduleSQL picks the due schedule to advance next, skipping those
// another transaction holds (another loop, a caller's Update in its transaction) and those
// this pass has done or backed off.
const dueScheduleSQL = `
SELECT ` + scheduleColumns + ` FROM wasso_schedule
WHERE enabled AND next_run_at <= $1 AND NOT (name = ANY($2))
ORDER BY next_run_at, name
LIMIT 1
FOR UPDATE SKIP LOCKED`

// advanceSQL moves a schedule to its next slot, if no one else has: the
// compare-and-set on next_run_at is what makes a loop that read the row
// before another loop's commit do nothing.
const advanceSQL = `
UPDATE wasso_schedule SET next_run_at = $3, enabled = $4,
    last_run_at = coalesce($5, last_run_at), last_job_id = coalesce($6, last_job_id),
    total_run_count = total_run_count + $7, skipped_count = skipped_count + $8,
    missed_count = missed_count + $9, updated_at = $10, buffered_slot = coalesce($11, buffered_slot)
WHERE name = $1 AND next_run_at = $2`

// runDueTx advances the earliest due schedule not in exclude, in tx. It
// returns nil, nil when none is due. The outcome names the schedule even
// when err is set.
func (s *Store) runDueTx(ctx context.Context, tx pgx.Tx, inserter Inserter, now time.Time, exclude []string) (*scheduleOutcome, error) {
	sched, err := scanSchedule(tx.QueryRow(ctx, dueScheduleSQL, now, exclude))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, scheduleErr("find due schedules", err)
	}
	out := &scheduleOutcome{name: sched.Name, sched: sched}
	tt, err := sched.validate()
	if err != nil {
		return out, fmt.Errorf("schedule %q: stored schedule is invalid: %w", sched.Name, err)
	}
	p := planSlots(tt, sched, now, s.config.MaxCatchUp)
	out.missed, out.missFrom, out.missTo, out.next = p.missed, p.missFrom, p.missTo, p.next
	run := p.run

	if len(run) > 0 {
		if out.paused, err = s.pauseForFailures(ctx, tx, inserter, sched, now); err != nil || out.paused != "" {
			return out, err
		}
	}
	if len(run) > 0 && sched.Overlap != OverlapAllow && sched.LastJobID != 0 {
		job, err := inserter.JobGetTx(ctx, tx, sched.LastJobID)
		if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return out, scheduleErr(fmt.Sprintf("schedule %q: state of job %d", sched.Name, sched.LastJobID), err)
		}
		if job != nil && unfinished(job.State) {
			if run, err = applyOverlap(ctx, tx, inserter, out, run, job.State); err != nil {
				return out, err
			}
		}
	}

	jobs, err := enqueueSlots(ctx, tx, inserter, sched, run, slotSourceSchedule, now)
	if err != nil {
		return out, err
	}
	out.jobs = jobs

	enabled := true
	switch {
	case sched.OneOff && len(jobs) > 0:
		enabled, out.next, out.disabled = false, time.Time{}, "one-off schedule has run"
	case out.next.IsZero() && !sched.ExpiresAt.IsZero():
		enabled, out.disabled = false, "expired"
	case out.next.IsZero():
		enabled, out.disabled = false, "cron expression never fires again"
	}
	var lastRun *time.Time
	var lastJob *int64
	if n := len(jobs); n > 0 {
		lastRun, lastJob = &jobs[n-1].slot, &jobs[n-1].jobID
	}
	tag, err := tx.Exec(ctx, advanceSQL, sched.Name, sched.NextRunAt, optTime(out.next), enabled,
		lastRun, lastJob, len(jobs), len(out.skipped), out.missed, now, optTime(out.buffered))
	if err != nil {
		return out, scheduleErr(fmt.Sprintf("advance schedule %q", sched.Name), err)
	}
	if tag.RowsAffected() == 0 {
		return out, errSlotRaced
	}
	return out, nil
}

// logOutcome logs, after the commit, a line per job enqueued, per slot
// skipped, one for the slots missed (with their count, first and last) and
// one when the schedule was disabled.
func (s *Store) logOutcome(ctx context.Context, out *scheduleOutcome) {
	logger := s.config.Logger
	s.logEnqueued(ctx, out.sched, out.jobs, slotSourceSchedule)
	for _, slot := range out.skipped {
		logger.WarnContext(ctx, "schedule slot skipped: previous job not finished",
			slog.String("schedule", out.name), slog.String("slot", FormatSlot(slot)),
			slog.Int64("previous_job_id", out.blocker), slog.String("previous_job_state", out.state))
	}
	if out.missed > 0 {
		logger.WarnContext(ctx, "schedule slots missed",
			slog.String("schedule", out.name), slog.String("policy", string(out.sched.Missed)),
			slog.Int64("missed", out.missed), slog.String("first", FormatSlot(out.missFrom)),
			slog.String("last", FormatSlot(out.missTo)))
	}
	if out.disabled != "" {
		logger.InfoContext(ctx, "schedule disabled", slog.String("schedule", out.name), slog.String("reason", out.disabled))
	}
	if !out.buffered.IsZero() {
		logger.InfoContext(ctx, "schedule slot waiting for the previous job",
			slog.String("schedule", out.name), slog.String("slot", FormatSlot(out.buffered)),
			slog.Int64("previous_job_id", out.blocker), slog.String("previous_job_state", out.state))
	}
	if out.canceled != 0 {
		logger.InfoContext(ctx, "schedule cancelled the previous job",
			slog.String("schedule", out.name), slog.Int64("previous_job_id", out.canceled), slog.String("previous_job_state", out.state))
	}
	if out.paused != "" {
		logger.WarnContext(ctx, "schedule paused after failures", slog.String("schedule", out.name), slog.String("note", out.paused))
	}
}

// slotPlan is what a pass does with a due schedule's slots.
type slotPlan struct {
	run              []time.Time // slots to enqueue, oldest first
	missed           int64
	missFrom, missTo time.Time
	next             time.Time // the schedule's next slot; zero: none
}

// planSlots decides, at now, the fate of the slots of sched from its
// next_run_at on. The slots due are those at or before now (and before
// ExpiresAt). Only the latest of them can be on time: each earlier one is
// followed by a slot already due, so its grace is over.
//
//   - MissedOnce runs the latest, the others are missed;
//   - MissedSkip runs the latest only if it is on time and the only slot
//     due (the scheduler did not fall behind); otherwise every slot due is
//     missed and the schedule resumes at its next future slot;
//   - MissedAll runs the latest maxCatchUp, older ones are missed.
//
// With a CatchupWindow, the slots older than now - CatchupWindow are
// missed whatever the policy, and a slot is on time for MissedSkip while
// within the window; without one, a slot is on time until MissedGrace (or
// the gap to the next slot, if shorter) after it. A one-off schedule runs
// one job at most, the latest chosen.
func planSlots(tt *timetable, sched *Schedule, now time.Time, maxCatchUp int) slotPlan {
	upTo := now
	if !sched.ExpiresAt.IsZero() && sched.ExpiresAt.Before(upTo) {
		upTo = sched.ExpiresAt
	}
	keep := 2
	if sched.Missed == MissedAll {
		keep = maxCatchUp + 1
	}
	due, total, first, following := dueSlots(tt, sched.NextRunAt, upTo, keep)
	var p slotPlan
	if following.IsZero() || (!sched.ExpiresAt.IsZero() && following.After(sched.ExpiresAt)) {
		p.next = time.Time{}
	} else {
		p.next = following
	}
	if total == 0 {
		return p
	}
	latest := due[len(due)-1]
	grace := MissedGrace
	if !following.IsZero() {
		grace = min(grace, following.Sub(latest))
	}
	if sched.CatchupWindow > 0 {
		grace = sched.CatchupWindow
	}
	onTime := now.Before(latest.Add(grace))

	n := 1 // how many of the latest slots run
	switch sched.Missed {
	case MissedSkip:
		if !onTime || total > 1 {
			n = 0
		}
	case MissedAll:
		n = int(min(total, int64(maxCatchUp)))
	}
	if sched.OneOff {
		n = min(n, 1)
	}
	if sched.CatchupWindow > 0 {
		// Only the slots within the window may run.
		cutoff := now.Add(-sched.CatchupWindow)
		within := len(due) - 1
		for within >= 0 && !due[within].Before(cutoff) {
			within--
		}
		n = min(n, len(due)-1-within)
	}
	p.run = due[len(due)-n:]
	p.missed = total - int64(n)
	if p.missed > 0 {
		p.missFrom = first
		p.missTo = due[len(due)-n-1]
	}
	return p
}

// dueSlots enumerates the slots from first (a next_run_at, so a slot) up
// to and including upTo. It returns the latest keep of them, oldest first,
// how many there are, the first, and the slot after the last (or after
// upTo when there are none). Interval schedules are counted, not
// enumerated, so that a long outage of a one-second schedule costs
// nothing.
func dueSlots(tt *timetable, first, upTo time.Time, keep int) (due []time.Time, total int64, firstDue, following time.Time) {
	if first.After(upTo) {
		return nil, 0, time.Time{}, first
	}
	if tt.spec == nil {
		total = int64(upTo.Sub(first)/tt.every) + 1
		from := max(total-int64(keep), 0)
		for i := from; i < total; i++ {
			due = append(due, first.Add(time.Duration(i)*tt.every))
		}
		return due, total, first, first.Add(time.Duration(total) * tt.every)
	}
	slot := first
	for ; !slot.IsZero() && !slot.After(upTo); slot = tt.next(slot) {
		total++
		if len(due) == keep {
			due = append(due[:0], due[1:]...)
		}
		due = append(due, slot)
	}
	return due, total, first, slot
}
