package attendance

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Defaults of DiscoverConfig.
const (
	// DiscoveryIntervalDefault is how often the leader looks for events
	// whose deadline needs a job. It bounds how late an event written by
	// the Django backend with a deadline less than one interval away (or
	// already past) is settled; events further out get their job well
	// before their deadline.
	DiscoveryIntervalDefault = time.Second
	// DiscoveryHorizonDefault is how far ahead the loop schedules
	// deadlines. Jobs inserted this early still start on time when the
	// leader is lost for less than the horizon (another runner works
	// them), while the number of jobs waiting in QueueExact stays the
	// events of the next few minutes.
	DiscoveryHorizonDefault = 10 * time.Minute
	// DiscoveryBatchDefault is how many jobs one discovery transaction
	// inserts at most; a pass runs batches until nothing is left.
	DiscoveryBatchDefault = 500
)

// DiscoverParams selects what one discovery pass looks at.
type DiscoverParams struct {
	// Horizon is how far ahead of now deadlines are scheduled. Zero means
	// DiscoveryHorizonDefault.
	Horizon time.Duration
	// Limit is the most jobs inserted. Zero means DiscoveryBatchDefault.
	Limit int
	// Lookback is how old a deadline may be and still get a job (as for
	// settlement). Zero means LookbackDefault.
	Lookback time.Duration
	// Now is the instant the window is measured from. The zero value
	// means the database clock (statement_timestamp()).
	Now time.Time
}

func (p *DiscoverParams) validate() error {
	if p.Horizon < 0 {
		return fmt.Errorf("%w: horizon %s must not be negative", ErrInvalidParams, p.Horizon)
	}
	if p.Limit < 0 {
		return fmt.Errorf("%w: limit %d must not be negative", ErrInvalidParams, p.Limit)
	}
	if p.Lookback < 0 {
		return fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidParams, p.Lookback)
	}
	return nil
}

// DiscoveredEvent is an event a discovery pass inserted a job for.
type DiscoveredEvent struct {
	EventID  int64     `json:"event_id"`
	Deadline time.Time `json:"deadline"`
}

// DiscoverTx finds, inside the caller's transaction, the events whose
// current deadline lies in the window (now - lookback, now + horizon], is
// neither planned (wasso_deadline_plan) nor settled (wasso_settlement) for
// that deadline, and whose generation is not deleted; it records each as
// planned and inserts its attendance.settle_event job with inserter. The
// jobs commit with the plan rows, or neither does.
//
// The window covers events created or moved by any writer, including the
// Django backend, which neither calls ScheduleEventTx nor reliably bumps
// events.updated_at (QuerySet.update() and raw SQL do not): an event whose
// start_datetime or fail_minutes changed has a deadline that differs from
// its plan, whatever its updated_at says. An event moved later keeps its
// old job, which finds nothing due; the new deadline gets a job of its own.
//
// Two passes at once (a leadership change) serialise on the plan rows: the
// second finds them planned and inserts nothing for them.
func DiscoverTx(ctx context.Context, tx pgx.Tx, inserter Inserter, params DiscoverParams) ([]DiscoveredEvent, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	if inserter == nil {
		return nil, fmt.Errorf("%w: inserter is nil", ErrInvalidParams)
	}
	horizon := params.Horizon
	if horizon == 0 {
		horizon = DiscoveryHorizonDefault
	}
	limit := params.Limit
	if limit == 0 {
		limit = DiscoveryBatchDefault
	}
	lookback := params.Lookback
	if lookback == 0 {
		lookback = LookbackDefault
	}
	// QueryExecModeExec: planned with the actual values on every pass. A
	// cached prepared statement may get a generic plan after five runs,
	// which cannot see that the deadline window is narrow and reads every
	// event instead of a range of wasso_events_deadline_idx; this runs
	// every second on the leader.
	rows, err := tx.Query(ctx, discoverSQL, pgx.QueryExecModeExec, nullTime(params.Now), lookback.Microseconds(), horizon.Microseconds(), limit)
	if err != nil {
		return nil, translate("discover deadlines", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DiscoveredEvent])
	if err != nil {
		return nil, translate("discover deadlines", err)
	}
	if len(found) == 0 {
		return nil, nil
	}
	jobs := make([]river.InsertManyParams, len(found))
	for i := range found {
		found[i].Deadline = found[i].Deadline.UTC()
		jobs[i] = NewSettleEventArgs(found[i].EventID, found[i].Deadline).insertParams()
	}
	if _, err := inserter.InsertManyTx(ctx, tx, jobs); err != nil {
		return nil, fmt.Errorf("discover deadlines: insert %d %s jobs: %w", len(found), SettleEventKind, err)
	}
	return found, nil
}

// discoverSQL plans the events of the window that need a job and returns
// them. The window is a range scan of wasso_events_deadline_idx (the
// expression index on wasso_deadline), so a pass costs the events of the
// lookback and the horizon, not the events table; the anti-joins go
// through the primary keys of wasso_deadline_plan and wasso_settlement.
// INSERT ... ON CONFLICT DO UPDATE ... WHERE returns only the rows this
// statement changed: a row another pass planned for the same deadline
// meanwhile (it waits for that pass's commit) is not returned twice.
//
// A planned event still unsettled ten seconds after its deadline is
// planned again, at most every thirty seconds: its job may have been
// deleted, cancelled or purged by an operator (River UI, wasso-runner
// jobs). Inserting the job again is harmless when it still exists, since
// settle_event jobs are unique by event and deadline; the sweep remains
// the safety net behind both.
var discoverSQL = `
WITH clock AS (SELECT coalesce($1::timestamptz, statement_timestamp()) AS now),
candidates AS (
    SELECT e.id, wasso_deadline(e.start_datetime, e.fail_minutes) AS deadline
    FROM clock, ` + candidatesSQL("$2", "$3") + `
    ORDER BY 2, 1
    LIMIT $4
)
INSERT INTO wasso_deadline_plan AS p (event_id, deadline, planned_at, source)
SELECT c.id, c.deadline, clock.now, 'discovery' FROM candidates c, clock
ORDER BY c.id
ON CONFLICT (event_id) DO UPDATE
    SET deadline = EXCLUDED.deadline, planned_at = EXCLUDED.planned_at, source = EXCLUDED.source
    WHERE p.deadline <> EXCLUDED.deadline OR p.planned_at <= EXCLUDED.planned_at - interval '30 seconds'
RETURNING p.event_id, p.deadline`

// DiscoveryPendingSQL returns an SQL boolean expression that is true when
// some event needs a job: when DiscoverTx, run at this statement's
// statement_timestamp(), would plan one. The parameters numbered
// lookbackParam and horizonParam (3 and 4 for $3 and $4) of the statement
// it is part of hold the lookback and the horizon, in microseconds
// (bigint). It reads what DiscoverTx reads, through the same indexes.
//
// The leader's discovery loop (Discoverer) asks it in the statement it
// runs every interval, beside River's own, so that a pass with nothing to
// plan costs one round trip and no transaction.
func DiscoveryPendingSQL(lookbackParam, horizonParam int) string {
	return `EXISTS (SELECT 1 FROM (SELECT statement_timestamp() AS now) clock, ` +
		candidatesSQL("$"+strconv.Itoa(lookbackParam), "$"+strconv.Itoa(horizonParam)) + `)`
}

// candidatesSQL is the part of a FROM clause, after a relation clock with
// a column now, that selects the events needing a job: those of the
// window, in microseconds before (lookback) and after (horizon) clock.now,
// that are neither planned for their current deadline (or planned long
// enough ago to be planned again) nor settled for it. lookback and horizon
// are the statement's parameters holding them. discoverSQL plans them;
// DiscoveryPendingSQL only asks whether there are any.
func candidatesSQL(lookback, horizon string) string {
	return `events e
    JOIN club_generation g ON g.id = e.generation_id AND NOT g.is_deleted
    WHERE wasso_deadline(e.start_datetime, e.fail_minutes) > clock.now - make_interval(secs => ` + lookback + `::bigint / 1e6)
      AND wasso_deadline(e.start_datetime, e.fail_minutes) <= clock.now + make_interval(secs => ` + horizon + `::bigint / 1e6)
      AND NOT EXISTS (
          SELECT 1 FROM wasso_deadline_plan p
          WHERE p.event_id = e.id AND p.deadline = wasso_deadline(e.start_datetime, e.fail_minutes)
            AND (p.deadline > clock.now - interval '10 seconds' OR p.planned_at > clock.now - interval '30 seconds')
      )
      AND NOT EXISTS (
          SELECT 1 FROM wasso_settlement s
          WHERE s.event_id = e.id AND s.deadline = wasso_deadline(e.start_datetime, e.fail_minutes)
      )`
}

// DiscoverConfig configures a Discoverer.
type DiscoverConfig struct {
	// BatchSize is how many jobs one transaction inserts at most. Zero
	// means DiscoveryBatchDefault.
	BatchSize int
	// Horizon: see DiscoveryHorizonDefault.
	Horizon time.Duration
	// Interval: see DiscoveryIntervalDefault.
	Interval time.Duration
	// Logger receives a line per pass that inserted jobs, and errors. Nil
	// discards logs.
	Logger *slog.Logger
	// Lookback is how old a deadline may be and still get a job. Zero
	// means LookbackDefault.
	Lookback time.Duration
	// RiverSchema is the schema of River's tables, where each pass makes
	// the QueueExact jobs due within ExactPromoteAhead available (see
	// passSQL). Empty means search_path.
	RiverSchema string
}

func (c *DiscoverConfig) validate() error {
	if c.BatchSize < 0 {
		return fmt.Errorf("%w: discovery batch size %d must not be negative", ErrInvalidParams, c.BatchSize)
	}
	if c.Horizon < 0 {
		return fmt.Errorf("%w: discovery horizon %s must not be negative", ErrInvalidParams, c.Horizon)
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: discovery interval %s must not be negative", ErrInvalidParams, c.Interval)
	}
	if c.Lookback < 0 {
		return fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidParams, c.Lookback)
	}
	return nil
}

// Discoverer runs DiscoverTx every interval on the River leader, so that
// events written by the Django backend get their settle_event job too.
//
// It is a River hook (rivertype.HookPeriodicJobsStart): River calls Start
// on the client that has just been elected leader, when its periodic job
// enqueuer starts, with a context that River cancels when that enqueuer
// stops (the client stops or loses leadership). The loop runs in that
// context, so exactly one runner discovers at a time, fails over with
// River's own leader election, and needs no election, service or lifecycle
// of its own: wassoriver.NewClient adds it to the client's hooks and
// nothing else has to start it.
//
// It is not a River periodic job on purpose: a job every second would
// leave 86,400 completed jobs a day in river_job and River UI. Should two
// loops ever run at once (a leadership handover), DiscoverTx keeps them
// from inserting a job twice.
type Discoverer struct {
	river.HookDefaults

	config   DiscoverConfig // defaults filled in
	db       Pool
	inserter atomic.Pointer[inserterBox]
	ahead    time.Duration // how far ahead of their instants jobs are promoted
	passSQL  string        // passSQL(config.RiverSchema)

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}

	// wakes are the instants, on this process's clock, at which Run wakes
	// the runners' producers of QueueExact: the scheduled_at of the jobs
	// RunOnce found waiting for an instant within ExactPromoteAhead.
	wakesMu    sync.Mutex
	wakes      []time.Time
	woken      map[time.Time]struct{} // the instants (database clock) wakes holds or held
	wakesAdded chan struct{}          // signalled when wakes gains an entry
}

type inserterBox struct{ Inserter }

// Pool runs statements on their own and starts transactions:
// *pgxpool.Pool is one.
type Pool interface {
	Beginner
	DB
}

// NewDiscoverer returns a Discoverer working on db. Call SetInserter
// before the River client starts.
func NewDiscoverer(db Pool, config DiscoverConfig) (*Discoverer, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: database is nil", ErrInvalidParams)
	}
	if err := config.validate(); err != nil {
		return nil, err
	}
	config.BatchSize = cmp.Or(config.BatchSize, DiscoveryBatchDefault)
	config.Horizon = cmp.Or(config.Horizon, DiscoveryHorizonDefault)
	config.Interval = cmp.Or(config.Interval, DiscoveryIntervalDefault)
	config.Lookback = cmp.Or(config.Lookback, LookbackDefault)
	if config.Logger == nil {
		config.Logger = slog.New(slog.DiscardHandler)
	}
	return &Discoverer{
		config: config,
		db:     db,
		// A loop slower than the default interval looks further ahead, so
		// that a job already scheduled is still available before its
		// instant.
		ahead:      ExactPromoteAhead + max(0, config.Interval-DiscoveryIntervalDefault),
		passSQL:    passSQL(config.RiverSchema),
		woken:      map[time.Time]struct{}{},
		wakesAdded: make(chan struct{}, 1),
	}, nil
}

// SetInserter sets what inserts the jobs, usually the River client the
// Discoverer is a hook of (which only exists once its config, holding the
// hook, is built).
func (d *Discoverer) SetInserter(inserter Inserter) {
	d.inserter.Store(&inserterBox{inserter})
}

// Start starts the discovery loop in ctx and returns at once. River calls
// it on the new leader (see Discoverer); a loop still running from an
// earlier call is stopped first.
func (d *Discoverer) Start(ctx context.Context, _ *rivertype.HookPeriodicJobsStartParams) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.cancel, d.done = cancel, done
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	return nil
}

// Wait returns once the loop Start started last has stopped (at once when
// none was started), or when ctx is done. River stops the loop by
// cancelling the context it gave Start; Wait lets the client's Stop make
// sure it has returned before the pool it uses is closed.
func (d *Discoverer) Wait(ctx context.Context) error {
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for deadline discovery to stop: %w", ctx.Err())
	}
}

// Run discovers every interval until ctx is done. Errors are logged and
// the next pass retries; a pass that filled a batch is followed at once by
// another. Between passes it wakes the producers of QueueExact at the
// instant each job due within ExactPromoteAhead comes due (see
// wakeExactSQL), so that a job starts then rather than at the next poll
// of the queue (deadlines.poll_interval).
func (d *Discoverer) Run(ctx context.Context) {
	d.config.Logger.InfoContext(ctx, "deadline discovery started", slog.Duration("interval", d.config.Interval), slog.Duration("horizon", d.config.Horizon))
	defer d.config.Logger.InfoContext(context.WithoutCancel(ctx), "deadline discovery stopped")
	// The wakes run beside the passes: a pass that inserts or promotes
	// many jobs (the 19:00 burst) must not hold back the wake that starts
	// them.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { d.wakeLoop(ctx) })
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if _, err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
			d.config.Logger.ErrorContext(ctx, "deadline discovery failed", slog.String("error", err.Error()))
		}
		timer.Reset(d.config.Interval)
	}
}

// wakeLoop wakes the producers of QueueExact at each instant addWakes
// recorded, until ctx is done.
func (d *Discoverer) wakeLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(d.untilNextWake())
		select {
		case <-ctx.Done():
			return
		case <-d.wakesAdded:
			continue
		case <-timer.C:
		}
		if !d.takeDueWakes() {
			continue
		}
		if _, err := d.db.Exec(ctx, wakeExactSQL, d.config.RiverSchema, QueueExact); err != nil && ctx.Err() == nil {
			d.config.Logger.WarnContext(ctx, "wake exact-deadline producers", slog.String("error", err.Error()))
		}
	}
}

// wakeMargin is how long after a job's instant its producers are woken:
// River fetches a job once scheduled_at <= now() on the database, whose
// clock this process only knows to within a round trip.
const wakeMargin = 5 * time.Millisecond

// wakeRetry is when the producers are woken again after a job's instant.
const wakeRetry = 100 * time.Millisecond

func (d *Discoverer) untilNextWake() time.Duration {
	d.wakesMu.Lock()
	defer d.wakesMu.Unlock()
	if len(d.wakes) == 0 {
		return time.Hour
	}
	return max(time.Until(d.wakes[0]), 0)
}

// takeDueWakes drops the wakes whose time has come and reports whether
// there were any.
func (d *Discoverer) takeDueWakes() bool {
	d.wakesMu.Lock()
	defer d.wakesMu.Unlock()
	now := time.Now()
	n := 0
	for n < len(d.wakes) && !d.wakes[n].After(now) {
		n++
	}
	d.wakes = d.wakes[n:]
	return n > 0
}

// addWakes records the instants (database clock) at which jobs come due,
// translated to this process's clock with offset (database minus local).
// Each pass reports the instants of every job still waiting: an instant
// still to come that an earlier pass recorded is not recorded again, and
// one already past gets a wake at once, since its job still waits (River's
// scheduler held it through the first wakes, say).
func (d *Discoverer) addWakes(instants []time.Time, offset time.Duration) {
	d.wakesMu.Lock()
	defer d.wakesMu.Unlock()
	now := time.Now()
	added := false
	insert := func(local time.Time) {
		if i, found := slices.BinarySearchFunc(d.wakes, local, time.Time.Compare); !found {
			d.wakes = slices.Insert(d.wakes, i, local)
			added = true
		}
	}
	for _, at := range instants {
		local := at.Add(-offset)
		if !local.After(now) {
			insert(now)
			continue
		}
		if _, seen := d.woken[at]; seen {
			continue
		}
		d.woken[at] = struct{}{}
		// A second wake, in case the first found the job not yet due on
		// the database's clock: the next poll could be a second away.
		insert(local.Add(wakeMargin))
		insert(local.Add(wakeRetry))
	}
	// Forget instants well behind both clocks: passes no longer report
	// them (they look back one second).
	for at := range d.woken {
		if at.Add(-offset).Before(now.Add(-wokenKept)) {
			delete(d.woken, at)
		}
	}
	if added {
		select {
		case d.wakesAdded <- struct{}{}:
		default: // already signalled
		}
	}
}

// wokenKept is how long an instant is remembered after it has passed.
const wokenKept = 10 * time.Second

// RunOnce runs one pass. Its first statement, in one round trip, makes the
// QueueExact jobs due within ExactPromoteAhead available, reports the
// instants of the jobs waiting, for the wakes, and says whether any event
// needs a job: an idle pass ends there. Otherwise DiscoverTx batches
// follow, each in its own transaction, until one comes back short. It
// returns the events it inserted jobs for.
func (d *Discoverer) RunOnce(ctx context.Context) ([]DiscoveredEvent, error) {
	box := d.inserter.Load()
	if box == nil || box.Inserter == nil {
		return nil, fmt.Errorf("discover deadlines: %w: no inserter set (call SetInserter)", ErrInvalidParams)
	}
	start := time.Now()
	check, err := firstStatement(ctx, d.db, d.passSQL, d.ahead, d.config.Lookback, d.config.Horizon)
	if err != nil {
		return nil, err
	}
	d.addWakes(check.instants, check.offset)
	if !check.pending {
		return nil, nil
	}
	var all []DiscoveredEvent
	for {
		var batch []DiscoveredEvent
		err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
			var err error
			batch, err = DiscoverTx(ctx, tx, box.Inserter, DiscoverParams{Horizon: d.config.Horizon, Limit: d.config.BatchSize, Lookback: d.config.Lookback})
			return err
		})
		if err != nil {
			return all, err
		}
		all = append(all, batch...)
		if len(batch) < d.config.BatchSize {
			break
		}
	}
	// The jobs just inserted for deadlines within ahead (or just past)
	// were inserted available (ExactTimeHook): wake their producers at
	// their instants too, rather than from the next pass on.
	dbNow := time.Now().Add(check.offset)
	var soon []time.Time
	for _, ev := range all {
		if ev.Deadline.After(dbNow.Add(-time.Second)) && !ev.Deadline.After(dbNow.Add(d.ahead)) {
			soon = append(soon, ev.Deadline.Truncate(time.Millisecond))
		}
	}
	d.addWakes(soon, check.offset)
	if len(all) > 0 {
		d.config.Logger.InfoContext(ctx, "deadline discovery scheduled events",
			slog.Int("events", len(all)), slog.Duration("duration", time.Since(start)))
	}
	return all, nil
}

// passCheck is what the first statement of a discovery pass found.
type passCheck struct {
	promoted int64         // QueueExact jobs it made available
	instants []time.Time   // the instants (database clock, to the millisecond) of the jobs waiting
	offset   time.Duration // the database's clock minus this process's
	pending  bool          // some event needs a job
}

// firstStatement runs sql, passSQL's text, on db as a statement of its
// own.
func firstStatement(ctx context.Context, db DB, sql string, ahead, lookback, horizon time.Duration) (passCheck, error) {
	var (
		c     passCheck
		dbNow time.Time
	)
	// QueryExecModeExec, for the reason given in DiscoverTx: the window is
	// planned with its actual bounds.
	err := db.QueryRow(ctx, sql, pgx.QueryExecModeExec, QueueExact, ahead.Microseconds(), lookback.Microseconds(), horizon.Microseconds()).
		Scan(&c.promoted, &c.instants, &dbNow, &c.pending)
	if err != nil {
		return passCheck{}, translate("make exact jobs available", err)
	}
	// clock_timestamp() is read as the statement returns its row, which
	// may be long after it started (an UPDATE of a thousand jobs): the
	// offset is taken against the moment the row arrives, which errs
	// late by the network's one-way delay, never early.
	c.offset = dbNow.Sub(time.Now())
	return c, nil
}

// passSQL and wakeExactSQL are the two statements of this package that
// touch River's internals, for lack of a public API.
//
// passSQL makes the QueueExact jobs due within $2 microseconds available.
// River's public API has no call to make a scheduled job available before
// its scheduled_at (JobRetry also moves scheduled_at to now, which would
// start the job early), so the Discoverer does what River's executor does
// for short snoozes: state available, scheduled_at kept. River's fetch
// (JobGetAvailable: state 'available' AND scheduled_at <= now()) then
// starts each at its instant, while River's own job scheduler, which only
// looks at scheduled and retryable jobs, leaves it alone; a job it misses
// (no leader) is made available by River's scheduler. River requires the
// unique states of any unique job to include both scheduled and available
// (requiredV3states in its insert_opts.go; uniqueWhileWaiting has them),
// so the change cannot collide with another job's unique key. It reads
// the queue's scheduled jobs through the (state, queue, ...) prefix of
// river_job_prioritized_fetching_index.
//
// It skips the rows another transaction holds (SKIP LOCKED): River's own
// scheduler may be promoting some of them, and a pass that waited for it
// would wake no one until it returned.
//
// It returns the count, the instants of the queue's jobs due within $2 or
// less than a second ago that wait, scheduled or available (those skipped
// too, so that their producers are woken once River has made them
// available; those just due, so that a job made available late is woken
// at once rather than at the next poll), the database's clock, and whether
// any event needs a job (DiscoveryPendingSQL, with the lookback $3 and the
// horizon $4).
func passSQL(riverSchema string) string {
	table := "river_job"
	if riverSchema != "" {
		table = pgx.Identifier{riverSchema, "river_job"}.Sanitize()
	}
	return `WITH promoted AS (
    UPDATE ` + table + `
    SET state = 'available'
    WHERE id IN (
        SELECT id FROM ` + table + `
        WHERE queue = $1
          AND state = 'scheduled'
          AND scheduled_at <= now() + make_interval(secs => $2::bigint / 1e6)
        FOR UPDATE SKIP LOCKED)
    RETURNING scheduled_at
),
waiting AS (
    SELECT scheduled_at FROM ` + table + `
    WHERE queue = $1
      AND state IN ('available', 'scheduled')
      AND scheduled_at > now() - interval '1 second'
      AND scheduled_at <= now() + make_interval(secs => $2::bigint / 1e6)
)
SELECT (SELECT count(*) FROM promoted),
       coalesce((SELECT array_agg(DISTINCT date_trunc('milliseconds', scheduled_at) ORDER BY date_trunc('milliseconds', scheduled_at)) FROM waiting), '{}'),
       clock_timestamp(),
       ` + DiscoveryPendingSQL(3, 4)
}

// wakeExactSQL sends the notification River's client sends when it
// inserts an available job ($1 the schema of River's tables, empty for
// the current schema; $2 the queue): every producer of the queue that
// listens fetches at once (River's PGNotifyMany, topic river_insert,
// payload {"queue": ...}). River has no public call to wake a queue's
// producers.
const wakeExactSQL = `SELECT pg_notify(concat(coalesce(nullif($1::text, ''), current_schema()), '.river_insert'), json_build_object('queue', $2::text)::text)`
