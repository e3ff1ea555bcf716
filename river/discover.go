package wassoriver

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/leaderloop"
)

// DiscoveryIntervalDefault is how often the leader's Discoverer looks for
// events whose deadline needs a job. It bounds how late an event written
// by the Django backend with a deadline less than one interval away (or
// already past) is settled; events further out get their job well before
// their deadline.
const DiscoveryIntervalDefault = time.Second

// DiscoverConfig configures a Discoverer.
type DiscoverConfig struct {
	// BatchSize is how many jobs one transaction inserts at most. Zero
	// means attendance.DiscoveryBatchDefault.
	BatchSize int
	// Horizon: see attendance.DiscoveryHorizonDefault.
	Horizon time.Duration
	// Interval: see DiscoveryIntervalDefault.
	Interval time.Duration
	// Logger receives a line per pass that inserted jobs, and errors. Nil
	// discards logs.
	Logger *slog.Logger
	// Lookback is how old a deadline may be and still get a job. Zero
	// means attendance.LookbackDefault.
	Lookback time.Duration
	// RiverSchema is the schema of River's tables, where each pass makes
	// the attendance.QueueExact jobs due within ExactPromoteAhead
	// available (see passSQL). Empty means search_path.
	RiverSchema string
}

func (c *DiscoverConfig) validate() error {
	if c.BatchSize < 0 {
		return fmt.Errorf("%w: discovery batch size %d must not be negative", ErrInvalidConfig, c.BatchSize)
	}
	if c.Horizon < 0 {
		return fmt.Errorf("%w: discovery horizon %s must not be negative", ErrInvalidConfig, c.Horizon)
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: discovery interval %s must not be negative", ErrInvalidConfig, c.Interval)
	}
	if c.Lookback < 0 {
		return fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidConfig, c.Lookback)
	}
	return nil
}

// Discoverer runs attendance.DiscoverTx every interval on the River
// leader, so that events written by the Django backend get their
// settle_event job too, and makes the jobs of attendance.QueueExact start
// at their instants (see ExactTimeHook).
//
// It is a River hook (rivertype.HookPeriodicJobsStart): River calls Start
// on the client that has just been elected leader, when its periodic job
// enqueuer starts, with a context that River cancels when that enqueuer
// stops (the client stops or loses leadership). The loop runs in that
// context, so exactly one runner discovers at a time, fails over with
// River's own leader election, and needs no election, service or lifecycle
// of its own: NewClient adds it to the client's hooks and nothing else has
// to start it.
//
// It is not a River periodic job on purpose: a job every second would
// leave 86,400 completed jobs a day in river_job and River UI. Should two
// loops ever run at once (a leadership handover), attendance.DiscoverTx
// keeps them from inserting a job twice.
type Discoverer struct {
	river.HookDefaults

	config   DiscoverConfig // defaults filled in
	db       DiscovererDB
	inserter atomic.Pointer[inserterBox]
	ahead    time.Duration // how far ahead of their instants jobs are promoted
	passSQL  string        // passSQL(config.RiverSchema)

	loop leaderloop.Loop

	// wakes are the instants, on this process's clock, at which Run wakes
	// the runners' producers of attendance.QueueExact: the scheduled_at of
	// the jobs RunOnce found waiting for an instant within
	// ExactPromoteAhead.
	wakesMu    sync.Mutex
	wakes      []time.Time
	woken      map[time.Time]struct{} // the instants (database clock) wakes holds or held
	wakesAdded chan struct{}          // signalled when wakes gains an entry
}

var _ rivertype.HookPeriodicJobsStart = (*Discoverer)(nil)

type inserterBox struct{ attendance.Inserter }

// DiscovererDB runs statements on their own and starts transactions:
// *pgxpool.Pool is one.
type DiscovererDB interface {
	attendance.Beginner
	attendance.DB
}

// NewDiscoverer returns a Discoverer working on db. Call SetInserter
// before the River client starts.
func NewDiscoverer(db DiscovererDB, config DiscoverConfig) (*Discoverer, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: database is nil", ErrInvalidConfig)
	}
	if err := config.validate(); err != nil {
		return nil, err
	}
	config.BatchSize = cmp.Or(config.BatchSize, attendance.DiscoveryBatchDefault)
	config.Horizon = cmp.Or(config.Horizon, attendance.DiscoveryHorizonDefault)
	config.Interval = cmp.Or(config.Interval, DiscoveryIntervalDefault)
	config.Lookback = cmp.Or(config.Lookback, attendance.LookbackDefault)
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
func (d *Discoverer) SetInserter(inserter attendance.Inserter) {
	d.inserter.Store(&inserterBox{inserter})
}

// Start starts the discovery loop in ctx and returns at once. River calls
// it on the new leader (see Discoverer); a loop still running from an
// earlier call is stopped first.
func (d *Discoverer) Start(ctx context.Context, _ *rivertype.HookPeriodicJobsStartParams) error {
	d.loop.Start(ctx, d.Run)
	return nil
}

// Wait returns once the loop Start started last has stopped (at once when
// none was started), or when ctx is done. River stops the loop by
// cancelling the context it gave Start; Wait lets the client's Stop make
// sure it has returned before the pool it uses is closed.
func (d *Discoverer) Wait(ctx context.Context) error { return d.loop.Wait(ctx, "deadline discovery") }

// Run discovers every interval until ctx is done. Errors are logged and
// the next pass retries; a pass that filled a batch is followed at once by
// another. Between passes it wakes the producers of attendance.QueueExact
// at the instant each job due within ExactPromoteAhead comes due (see
// wakeExactSQL), so that a job starts then rather than at the next poll of
// the queue (deadlines.poll_interval).
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

// wakeLoop wakes the producers of attendance.QueueExact at each instant
// addWakes recorded, until ctx is done.
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
		if err := wakeExact(ctx, d.db, d.config.RiverSchema, attendance.QueueExact); err != nil && ctx.Err() == nil {
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

// RunOnce runs one pass. Its first statement (passSQL), in one round
// trip, makes the attendance.QueueExact jobs due within ExactPromoteAhead
// available, reports the instants of the jobs waiting, for the wakes, and
// says whether any event needs a job: an idle pass ends there. Otherwise
// attendance.DiscoverTx batches follow, each in its own transaction, until
// one comes back short. It returns the events it inserted jobs for.
func (d *Discoverer) RunOnce(ctx context.Context) ([]attendance.DiscoveredEvent, error) {
	box := d.inserter.Load()
	if box == nil || box.Inserter == nil {
		return nil, fmt.Errorf("discover deadlines: %w: no inserter set (call SetInserter)", ErrInvalidConfig)
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
	var all []attendance.DiscoveredEvent
	for {
		var batch []attendance.DiscoveredEvent
		err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
			var err error
			batch, err = attendance.DiscoverTx(ctx, tx, box.Inserter, attendance.DiscoverParams{Horizon: d.config.Horizon, Limit: d.config.BatchSize, Lookback: d.config.Lookback})
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
	// were inserted available (ExactTimeHook, which the inserting client
	// carries): wake their producers at their instants too, rather than
	// from the next pass on.
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
