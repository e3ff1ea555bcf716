package schedule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
// listener reconnects). A pass takes the due schedules in batches of up to
// StoreConfig.PassBatch (PassBatchDefault, 1,000), two batch transactions
// at a time on connections of their own, each with a fixed number of
// statements however large it is:
//
//  1. SELECT ... FOR UPDATE SKIP LOCKED the earliest due schedules, in
//     next_run_at order (the first entries of its index);
//  2. choose each one's slots to run by its MissedPolicy and
//     CatchupWindow (see planSlots); a schedule with PauseAfterFailures
//     whose last jobs all failed is paused instead;
//  3. while the schedule's last job is still available, pending,
//     scheduled, running or retryable (one River JobListTx reads the last
//     jobs of the batch), apply its OverlapPolicy: skip the slots
//     (SkippedCount), leave the latest waiting (OverlapBufferOne, enqueued
//     by a later pass once the job finished), or cancel the job
//     (OverlapCancelOther, River's JobCancelTx) and go on;
//  4. leave out the slots that already have a row in wasso_schedule_slot
//     (a backfill, a run now), insert a job for each of the others, all
//     in one InsertManyTx, and record those slots with their jobs in one
//     INSERT ... ON CONFLICT DO NOTHING;
//  5. advance every next_run_at with one compare-and-set UPDATE on the old
//     values, with last_run_at, last_job_id and the counters; a one-off
//     schedule that enqueued, or one whose next slot is past its expiry,
//     is disabled.
//
// A slot claim or a compare-and-set that comes short fails the batch, so
// no job of it commits. A batch that fails as a whole (a job River will
// not insert: a kind the leader's client does not work, a queue name it
// refuses) is retried in halves, down to a transaction per schedule, so
// that the broken schedule is logged and left out of the passes for a
// while (30 s) and the others are enqueued in the same pass. Each job
// enqueued is logged once its batch commits.
//
// The row lock, the compare-and-set and the slot table's primary key each
// make a slot's job unique on their own: two loops running at once (a
// leadership handover, a second client with a stale view) enqueue a slot
// once, and a loop killed mid-pass leaves its uncommitted batches to the
// next leader. Each job's metadata carries {"schedule": name, "slot":
// instant}.
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
	p := &pass{s: s, inserter: inserter, now: now, res: res, exclude: exclude, seen: map[string]bool{}}
	// Batches until none finds a due schedule left. As soon as one select
	// fills a batch, passParallel-1 more goroutines take batches as well,
	// each in a transaction of its own (SKIP LOCKED: each skips the
	// others' rows); a pass with fewer due uses one connection.
	errs := make([]error, passParallel)
	var wg sync.WaitGroup
	var spread sync.Once
	var take func(i int)
	full := func() {
		spread.Do(func() {
			for i := 1; i < passParallel; i++ {
				wg.Go(func() { take(i) })
			}
		})
	}
	take = func(i int) {
		for {
			selected, err := p.runBatch(ctx, batchSelect{exclude: p.excluded(), limit: s.store.config.PassBatch, full: full})
			if err != nil {
				errs[i] = err
				return
			}
			if selected == 0 {
				return // nothing left due, or left to the others
			}
		}
	}
	take(0)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if now.Sub(s.lastPrune) >= slotPruneInterval {
		if _, err := s.pool.Exec(ctx, pruneSlotsSQL, now.Add(-s.store.config.SlotRetention)); err != nil {
			return res, scheduleErr("prune schedule slots", err)
		}
		s.lastPrune = now
	}
	return res, nil
}

// passParallel is how many batch transactions a pass runs at once, each
// on a connection of its own. A batch costs Postgres some 50 µs of
// processor per schedule (the row lock, a job and a slot row with their
// indexes, the update), and the runner the same order again to build it:
// two batches at once keep both sides busy, and reach a second core.
const passParallel = 2

// pass is the state of one runPass, shared by its goroutines.
type pass struct {
	s        *Scheduler
	inserter Inserter
	now      time.Time

	mu  sync.Mutex // guards the fields below, and s.backoff
	res *PassResult
	// exclude are the schedules the pass leaves alone: backed off, failed
	// or raced in this pass, or seen twice.
	exclude []string
	// seen are the schedules the pass has handled: one that comes due
	// again during the pass (a caller set next_run_at back meanwhile) is
	// left to the next pass, as a guard against a pass that never ends.
	seen map[string]bool
}

func (p *pass) excluded() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.exclude)
}

func (p *pass) wasSeen(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[name]
}

// runBatch runs one batch transaction over the schedules sel selects and
// accounts for it; when the batch fails as a whole, its schedules are
// retried in smaller transactions (fallback). It returns how many
// schedules the batch selected, and an error only when the pass cannot go
// on (the select failed, ctx is done).
func (p *pass) runBatch(ctx context.Context, sel batchSelect) (int, error) {
	var b *batchOutcome
	err := commitDespiteCancel(ctx, p.s.pool, func(tx pgx.Tx) error {
		var err error
		b, err = p.s.store.runBatchTx(ctx, tx, p.inserter, p.now, sel, p.wasSeen)
		return err
	})
	if b == nil {
		return 0, err // nothing selected, or the select failed
	}
	if err != nil {
		if ctx.Err() != nil || p.s.databaseLost(ctx) {
			return len(b.names), err
		}
		// The other goroutines leave these to the fallback, which takes
		// them by name.
		p.mu.Lock()
		p.exclude = append(p.exclude, b.names...)
		p.mu.Unlock()
		level := slog.LevelWarn
		if sel.names != nil {
			level = slog.LevelDebug // a part of a batch that failed, logged
		}
		p.s.store.config.Logger.Log(ctx, level, "schedule batch failed; retrying its schedules in smaller transactions",
			slog.Int("schedules", len(b.names)), slog.String("error", err.Error()))
		return len(b.names), p.fallback(ctx, b.names)
	}
	p.account(ctx, b)
	return len(b.names), nil
}

// fallbackSingle is the size at or under which a failed batch's
// schedules are retried one transaction each; a larger one is split in
// two halves, each retried as a batch, so that one broken schedule among
// PassBatch costs about 2·log2(PassBatch) transactions, not PassBatch.
const fallbackSingle = 8

// fallback retries the schedules of a batch that failed as a whole (a job
// River would not insert, a statement that failed): halves as batches
// while they are large, then each schedule in a transaction of its own,
// so that the broken one is backed off and logged and the others are
// enqueued.
func (p *pass) fallback(ctx context.Context, names []string) error {
	if len(names) <= fallbackSingle {
		for _, name := range names {
			if err := p.runOne(ctx, name); err != nil {
				return err
			}
		}
		return nil
	}
	half := len(names) / 2
	for _, part := range [][]string{names[:half], names[half:]} {
		if _, err := p.runBatch(ctx, batchSelect{names: part}); err != nil {
			return err
		}
	}
	return nil
}

// account records a committed batch: its counts, the backoff of the
// schedules it could not read, and its log lines (outside the lock).
func (p *pass) account(ctx context.Context, b *batchOutcome) {
	p.mu.Lock()
	p.exclude = append(p.exclude, b.again...)
	for _, out := range b.outs {
		p.succeeded(out)
	}
	p.mu.Unlock()
	for _, f := range b.failed {
		p.fail(ctx, f.name, f.err)
	}
	for _, out := range b.outs {
		p.s.store.logOutcome(ctx, out)
	}
}

// succeeded counts a schedule advanced; p.mu is held.
func (p *pass) succeeded(out *scheduleOutcome) {
	p.seen[out.name] = true
	if len(p.s.backoff) > 0 {
		delete(p.s.backoff, out.name)
	}
	if !out.buffered.IsZero() {
		p.s.buffering.Store(true)
	}
	p.res.Schedules++
	p.res.Enqueued += len(out.jobs)
	p.res.Skipped += len(out.skipped)
	p.res.Missed += int(out.missed)
}

// fail backs off a schedule whose transaction failed, and logs it.
func (p *pass) fail(ctx context.Context, name string, err error) {
	p.mu.Lock()
	p.seen[name] = true
	p.exclude = append(p.exclude, name)
	p.res.Failed++
	p.s.backoff[name] = p.now.Add(scheduleErrorBackoff)
	p.mu.Unlock()
	p.s.store.config.Logger.ErrorContext(ctx, "schedule failed; retrying later",
		slog.String("schedule", name), slog.String("error", err.Error()),
		slog.Duration("retry_in", scheduleErrorBackoff))
}

// runOne advances the schedule named, if it is still due and not locked,
// in a transaction of its own (runDueTx).
func (p *pass) runOne(ctx context.Context, name string) error {
	var out *scheduleOutcome
	err := commitDespiteCancel(ctx, p.s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = p.s.store.runDueTx(ctx, tx, p.inserter, p.now, name)
		return err
	})
	if out == nil {
		return err // not due any more, locked, or the select failed
	}
	switch {
	case errors.Is(err, errSlotRaced):
		// Another loop advanced it first: nothing to do.
		p.mu.Lock()
		p.seen[name] = true
		p.exclude = append(p.exclude, name)
		p.mu.Unlock()
	case err != nil:
		if ctx.Err() != nil || p.s.databaseLost(ctx) {
			return err
		}
		p.fail(ctx, name, err)
	default:
		p.mu.Lock()
		p.succeeded(out)
		p.mu.Unlock()
		p.s.store.logOutcome(ctx, out)
	}
	return nil
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

// databaseLost says whether a failed transaction failed because the
// database is out of reach (a restart, a failover: a ping fails too)
// rather than because of its schedules. The pass then ends, to be retried
// whole by the next one, instead of backing its schedules off for
// scheduleErrorBackoff as it does for a schedule of its own failing.
func (s *Scheduler) databaseLost(ctx context.Context) bool {
	pingCtx, cancel := context.WithTimeout(ctx, databaseLostPing)
	defer cancel()
	return s.pool.Ping(pingCtx) != nil
}

// databaseLostPing bounds databaseLost's ping.
const databaseLostPing = 2 * time.Second

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

// dueScheduleSQL locks the schedule named if it is due, unless another
// transaction holds it (another loop, a caller's Update in its
// transaction).
const dueScheduleSQL = `
SELECT ` + scheduleColumns + ` FROM wasso_schedule
WHERE enabled AND next_run_at <= $1 AND name = $2
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

// runDueTx advances the schedule named, in tx, one schedule's
// transaction: the path a pass falls back to when a batch fails. It
// returns nil, nil when the schedule is not due or another transaction
// holds it. The outcome names the schedule even when err is set.
func (s *Store) runDueTx(ctx context.Context, tx pgx.Tx, inserter Inserter, now time.Time, name string) (*scheduleOutcome, error) {
	sched, err := scanSchedule(tx.QueryRow(ctx, dueScheduleSQL, now, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, scheduleErr("find due schedules", err)
	}
	out, run, err := s.plan(sched, now)
	if err != nil {
		return out, err
	}

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
		if job != nil && jobBlocks(job.State) {
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

	a := out.advance()
	tag, err := tx.Exec(ctx, advanceSQL, sched.Name, sched.NextRunAt, optTime(out.next), a.enabled,
		a.lastRun, a.lastJob, len(jobs), len(out.skipped), out.missed, now, optTime(out.buffered))
	if err != nil {
		return out, scheduleErr(fmt.Sprintf("advance schedule %q", sched.Name), err)
	}
	if tag.RowsAffected() == 0 {
		return out, errSlotRaced
	}
	return out, nil
}

// plan reads a due schedule and plans its slots (planSlots): the outcome
// so far, and the slots to run before the overlap policy.
func (s *Store) plan(sched *Schedule, now time.Time) (*scheduleOutcome, []time.Time, error) {
	out := &scheduleOutcome{name: sched.Name, sched: sched}
	tt, err := sched.validate()
	if err != nil {
		return out, nil, fmt.Errorf("schedule %q: stored schedule is invalid: %w", sched.Name, err)
	}
	p := planSlots(tt, sched, now, s.config.MaxCatchUp)
	out.missed, out.missFrom, out.missTo, out.next = p.missed, p.missFrom, p.missTo, p.next
	return out, p.run, nil
}

// blockingStates are the states of a schedule's last job that bring its
// overlap policy into play (skip, buffer_one, cancel_other): it has not
// finished.
var blockingStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateScheduled,
	rivertype.JobStateRunning, rivertype.JobStateRetryable,
}

// jobBlocks says whether a last job in state holds back the next slots.
func jobBlocks(state rivertype.JobState) bool { return slices.Contains(blockingStates, state) }

// advanceValues are the columns a pass writes besides next_run_at and
// the counters.
type advanceValues struct {
	enabled bool
	lastRun *time.Time
	lastJob *int64
}

// advance decides, once out's jobs are known, whether the schedule stays
// enabled (a one-off that enqueued, an expired schedule and a cron
// expression that never fires again are disabled; out.next and
// out.disabled say so) and its last run and job.
func (out *scheduleOutcome) advance() advanceValues {
	a := advanceValues{enabled: true}
	switch {
	case out.sched.OneOff && len(out.jobs) > 0:
		a.enabled, out.next, out.disabled = false, time.Time{}, "one-off schedule has run"
	case out.next.IsZero() && !out.sched.ExpiresAt.IsZero():
		a.enabled, out.disabled = false, "expired"
	case out.next.IsZero():
		a.enabled, out.disabled = false, "cron expression never fires again"
	}
	if n := len(out.jobs); n > 0 {
		a.lastRun, a.lastJob = &out.jobs[n-1].slot, &out.jobs[n-1].jobID
	}
	return a
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
