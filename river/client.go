package wassoriver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/river/schedule"
)

// Defaults applied by Config.WithDefaults.
const (
	// ConcurrencyDefault is how many jobs the default queue works at once.
	ConcurrencyDefault = 4
	// QueueDefault is the queue the attendance jobs go to.
	QueueDefault = river.QueueDefault
	// CompletedJobRetentionPeriodDefault is how long completed jobs stay
	// visible (in River UI and inspect) before River deletes them.
	CompletedJobRetentionPeriodDefault = 24 * time.Hour
	// CancelledJobRetentionPeriodDefault is how long cancelled jobs stay.
	CancelledJobRetentionPeriodDefault = 7 * 24 * time.Hour
	// DiscardedJobRetentionPeriodDefault is how long discarded jobs (those
	// that ran out of attempts) stay.
	DiscardedJobRetentionPeriodDefault = 7 * 24 * time.Hour
	// ExactConcurrencyDefault is how many jobs of attendance.QueueExact (the
	// per-event settlements) run at once. Each holds a pool connection for
	// its transaction, a few milliseconds per event.
	ExactConcurrencyDefault = 4
	// ExactPollIntervalDefault is how often each runner asks Postgres for
	// attendance.QueueExact jobs whose time has come when nothing wakes it
	// sooner. Settlement jobs are available with scheduled_at at the
	// deadline from ExactPromoteAhead before it (inserted so, or made so
	// by the leader's discovery pass; see ExactTimeHook), and the leader
	// wakes every runner's producer of the queue at each of those instants
	// through River's insert notification (see Discoverer.Run), so the
	// poll is only the fallback when no leader wakes the runners: a job
	// then starts up to this late. It is River's own default.
	ExactPollIntervalDefault = time.Second
	// ExactFetchCooldownDefault is the least time between two fetches of
	// attendance.QueueExact. River's default (100 ms) would let a runner
	// start at most ExactConcurrency settlements per 100 ms when many
	// deadlines fall on the same instant (events at 19:00 in every club);
	// 10 ms lets the next fetch follow the previous job's completion.
	ExactFetchCooldownDefault = 10 * time.Millisecond
	// JobTimeoutDefault bounds a job whose own timeout is not set: the
	// per-event settlement always, the sweep and the absent notices when
	// SweepTimeout and NotifyTimeout are zero. It is River's default.
	JobTimeoutDefault = river.JobTimeoutDefault
	// RescueStuckJobsMargin is what the derived RescueStuckJobsAfter adds
	// to the longest job timeout. A job's context is cancelled at its
	// timeout and pgx then gives up its query at once, so a live job
	// returns within milliseconds of it; the margin is for a worker slow
	// to notice, for River to record the result, and for clock skew: the
	// rescuer compares the leader's clock with attempted_at, which
	// Postgres wrote.
	RescueStuckJobsMargin = time.Minute
	// SweepParallelDefault is how many batches the sweep settles at once
	// when it finds a backlog (attendance.SettleParams.Parallel), each on
	// a pool connection of its own: enough to keep a small database's
	// cores busy (docs/benchmarks.md has the figures). A sweep that finds
	// one batch or less due settles it alone, on one connection.
	SweepParallelDefault = 4
	// SweepParallelMax is the most batches Validate lets a sweep settle
	// at once: each takes a connection, and past the database's cores
	// they only contend for locks and I/O.
	SweepParallelMax = 16
)

// ErrInvalidConfig is returned, wrapped with the offending field named,
// when a Config value is out of range.
var ErrInvalidConfig = errors.New("invalid config")

// Config configures the River client and the attendance jobs.
type Config struct {
	// BurstLimit is the most events one attendance.settle_event job
	// settles in its transaction when many deadlines fall at once: its own
	// event, then the other due ones. Zero means
	// attendance.BurstLimitDefault; 1 settles each job's own event only.
	BurstLimit int

	// CancelledJobRetentionPeriod: see CancelledJobRetentionPeriodDefault.
	CancelledJobRetentionPeriod time.Duration

	// CompletedJobRetentionPeriod: see CompletedJobRetentionPeriodDefault.
	CompletedJobRetentionPeriod time.Duration

	// Concurrency is how many jobs the default queue works at once when
	// Queues is empty. Zero means ConcurrencyDefault.
	Concurrency int

	// DiscardedJobRetentionPeriod: see DiscardedJobRetentionPeriodDefault.
	DiscardedJobRetentionPeriod time.Duration

	// DiscoveryHorizon is how far ahead the leader schedules deadlines of
	// events it discovers. Zero means attendance.DiscoveryHorizonDefault.
	DiscoveryHorizon time.Duration

	// DiscoveryInterval is how often the leader looks for events written
	// without ScheduleEventTx (by the Django backend). Zero means
	// DiscoveryIntervalDefault.
	DiscoveryInterval time.Duration

	// ExactConcurrency is how many attendance.QueueExact jobs run at once.
	// Zero means ExactConcurrencyDefault; Queues[attendance.QueueExact], if
	// set, wins.
	ExactConcurrency int

	// ExactPollInterval is how often attendance.QueueExact is polled. Zero
	// means ExactPollIntervalDefault; it must be between 10 ms and 1 s.
	ExactPollInterval time.Duration

	// FollowUp, if set, runs inside every settlement transaction (of the
	// sweep and of the per-event jobs), after the absent notices are
	// enqueued, for jobs that must commit with the settlement.
	FollowUp attendance.FollowUpFunc

	// Hooks are added to the River client's hooks, after the ones NewClient
	// adds (ExactTimeHook, the Discoverer, the Scheduler): a leader loop of
	// the caller's own is a rivertype.HookPeriodicJobsStart.
	Hooks []rivertype.Hook

	// JobTimeout bounds every job whose own timeout is not set:
	// attendance.settle_event always, attendance.sweep and
	// attendance.notify_absent when SweepTimeout and NotifyTimeout are
	// zero, and the jobs of Workers that keep River's default. Zero means
	// JobTimeoutDefault. River's -1 (no timeout) is refused: a job without
	// a bound could outlive RescueStuckJobsAfter and run twice.
	JobTimeout time.Duration

	// ListenPool, if set, is a pool of direct connections to the same
	// database that carries LISTEN alone: River's notifier and the
	// schedule loop's listener take their connection from it, while every
	// other statement goes through the client's pool. A pool behind a
	// connection pooler in transaction mode (PgBouncer) cannot LISTEN: a
	// notification reaches no one once the server connection returns to
	// the pooler's pool. Two connections are enough. Nil means the
	// client's pool.
	ListenPool *pgxpool.Pool

	// Logger is used by River and by the attendance workers. Nil discards.
	Logger *slog.Logger

	// Lookback is how old a deadline the sweep still settles. Zero means
	// attendance.LookbackDefault.
	Lookback time.Duration

	// NoDeadlines leaves exact deadlines out: the client neither works
	// attendance.settle_event jobs (no attendance.QueueExact) nor runs
	// deadline discovery when it is the leader, so events are settled by
	// the sweep alone unless another client does both.
	NoDeadlines bool

	// NoNotify leaves notifications out: settlements enqueue no
	// attendance.notify_absent jobs and the client does not work them.
	NoNotify bool

	// NoSchedules makes a client that runs no schedules: when it is the
	// leader it neither runs the Scheduler of wasso_schedule nor seeds
	// DefaultSchedules, so it enqueues no sweeps; it still works every job
	// that any client enqueues. Without it, the sweep is the stored
	// schedule SweepScheduleName, seeded once by the first leader.
	NoSchedules bool

	// Notifier delivers the absent notices. Nil means an
	// attendance.LogNotifier on Logger.
	Notifier attendance.Notifier

	// NotifyTimeout bounds one notice delivery. Zero means JobTimeout; the
	// webhook notifier has its own, shorter one.
	NotifyTimeout time.Duration

	// PeriodicJobs are added to the client's periodic jobs, after the sweep.
	PeriodicJobs []*river.PeriodicJob

	// RescueStuckJobsAfter is how long a job may stay running before the
	// leader's rescuer takes it for stuck and schedules it for a retry. A
	// job whose client died (SIGKILL, out of memory, a lost host) stays
	// running in river_job, since nothing is left to finish it, until
	// then; River's own default is an hour. Zero derives it from the job
	// timeouts: LongestJobTimeout plus RescueStuckJobsMargin, two minutes
	// with the defaults. It must not be shorter than LongestJobTimeout, or
	// River would retry jobs that are still running.
	//
	// The rescuer runs on the leader only, every 30 seconds, with the
	// leader's value: clients that may be elected should agree on it. A
	// backend whose own workers (Workers) run longer than the attendance
	// jobs must set it above their timeouts.
	RescueStuckJobsAfter time.Duration

	// Queues maps queue names to how many jobs each works at once. Empty
	// means the default queue with Concurrency workers. Unless NoDeadlines,
	// NewClient also works attendance.QueueExact, with ExactConcurrency
	// workers unless Queues names it.
	Queues map[string]int

	// RetryPolicy decides when failed jobs (a notifier that is down) are
	// retried. Nil keeps River's default, attempt^4 seconds.
	RetryPolicy river.ClientRetryPolicy

	// Schema is the Postgres schema of River's tables. Empty means
	// search_path.
	Schema string

	// Scheduler, if set, is the schedule loop the client runs when it is
	// the leader, for a caller that wants to Wait for it or share its
	// store; NewClient sets its store's inserter to the client. Nil means
	// one built from Schedules (see ScheduleStoreConfig), unless
	// NoSchedules.
	Scheduler *schedule.Scheduler

	// Schedules configures the store of the Scheduler NewClient builds.
	// Zero values mean their defaults; nil Kinds mean ScheduleKinds and a
	// nil Logger means Logger.
	Schedules schedule.StoreConfig

	// SweepInterval is the interval DefaultSchedules seeds the stored
	// sweep schedule with; once seeded, the stored schedule's own interval
	// applies. Zero means attendance.SweepIntervalDefault.
	SweepInterval time.Duration

	// SweepParallel is how many batches a sweep settles at once, each in a
	// transaction on a pool connection of its own, when it finds more
	// than one batch due (a backlog after an outage). Zero means
	// SweepParallelDefault; 1 settles one batch at a time. At most
	// SweepParallelMax.
	SweepParallel int

	// SweepTimeout bounds one sweep job. Zero means JobTimeout.
	SweepTimeout time.Duration

	// Workers, if set, is the registry the attendance workers are added to,
	// for a client that also works jobs of its own. Nil means a new one.
	Workers *river.Workers
}

// WithDefaults returns a copy of the config with zero values replaced by
// their defaults.
func (c Config) WithDefaults() Config {
	c.BurstLimit = cmp.Or(c.BurstLimit, attendance.BurstLimitDefault)
	c.CancelledJobRetentionPeriod = cmp.Or(c.CancelledJobRetentionPeriod, CancelledJobRetentionPeriodDefault)
	c.CompletedJobRetentionPeriod = cmp.Or(c.CompletedJobRetentionPeriod, CompletedJobRetentionPeriodDefault)
	c.Concurrency = cmp.Or(c.Concurrency, ConcurrencyDefault)
	c.DiscardedJobRetentionPeriod = cmp.Or(c.DiscardedJobRetentionPeriod, DiscardedJobRetentionPeriodDefault)
	c.DiscoveryHorizon = cmp.Or(c.DiscoveryHorizon, attendance.DiscoveryHorizonDefault)
	c.DiscoveryInterval = cmp.Or(c.DiscoveryInterval, DiscoveryIntervalDefault)
	c.ExactConcurrency = cmp.Or(c.ExactConcurrency, ExactConcurrencyDefault)
	c.ExactPollInterval = cmp.Or(c.ExactPollInterval, ExactPollIntervalDefault)
	c.JobTimeout = cmp.Or(c.JobTimeout, JobTimeoutDefault)
	c.RescueStuckJobsAfter = cmp.Or(c.RescueStuckJobsAfter, c.LongestJobTimeout()+RescueStuckJobsMargin)
	c.Lookback = cmp.Or(c.Lookback, attendance.LookbackDefault)
	c.SweepInterval = cmp.Or(c.SweepInterval, attendance.SweepIntervalDefault)
	c.SweepParallel = cmp.Or(c.SweepParallel, SweepParallelDefault)
	c.Schedules = c.Schedules.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{QueueDefault: c.Concurrency}
	}
	if c.Notifier == nil {
		c.Notifier = attendance.NewLogNotifier(c.Logger)
	}
	return c
}

// LongestJobTimeout is the longest timeout an attendance job can run for:
// the largest of SweepTimeout, NotifyTimeout and JobTimeout (a zero one
// standing for JobTimeout, and a zero JobTimeout for JobTimeoutDefault).
// Every kind counts, worked by this client or not (NoDeadlines,
// NoNotify): the leader rescues the jobs of every client.
func (c *Config) LongestJobTimeout() time.Duration {
	job := cmp.Or(c.JobTimeout, JobTimeoutDefault)
	return max(job, cmp.Or(c.SweepTimeout, job), cmp.Or(c.NotifyTimeout, job))
}

// Validate returns the first field out of range as a *ConfigFieldError.
func (c *Config) Validate() error {
	durations := []struct {
		name  string
		value time.Duration
	}{
		{"CancelledJobRetentionPeriod", c.CancelledJobRetentionPeriod},
		{"CompletedJobRetentionPeriod", c.CompletedJobRetentionPeriod},
		{"DiscardedJobRetentionPeriod", c.DiscardedJobRetentionPeriod},
		{"DiscoveryHorizon", c.DiscoveryHorizon},
		{"DiscoveryInterval", c.DiscoveryInterval},
		{"ExactPollInterval", c.ExactPollInterval},
		{"JobTimeout", c.JobTimeout},
		{"Lookback", c.Lookback},
		{"NotifyTimeout", c.NotifyTimeout},
		{"RescueStuckJobsAfter", c.RescueStuckJobsAfter},
		{"SweepInterval", c.SweepInterval},
		{"SweepTimeout", c.SweepTimeout},
	}
	for _, d := range durations {
		if d.value < 0 {
			return configFieldError(d.name, "%s must not be negative", d.value)
		}
	}
	if longest := c.LongestJobTimeout(); c.RescueStuckJobsAfter != 0 && c.RescueStuckJobsAfter < longest {
		return configFieldError("RescueStuckJobsAfter", "%s is shorter than the longest job timeout (%s): River would retry jobs that are still running", c.RescueStuckJobsAfter, longest)
	}
	if c.SweepInterval > 0 && c.SweepInterval < time.Second {
		return configFieldError("SweepInterval", "%s is shorter than one second", c.SweepInterval)
	}
	if c.Concurrency < 0 {
		return configFieldError("Concurrency", "%d must not be negative", c.Concurrency)
	}
	if c.BurstLimit < 0 {
		return configFieldError("BurstLimit", "%d must not be negative", c.BurstLimit)
	}
	if c.SweepParallel < 0 || c.SweepParallel > SweepParallelMax {
		return configFieldError("SweepParallel", "%d must be between 0 (default) and %d", c.SweepParallel, SweepParallelMax)
	}
	if c.ExactConcurrency < 0 {
		return configFieldError("ExactConcurrency", "%d must not be negative", c.ExactConcurrency)
	}
	if c.ExactPollInterval != 0 && (c.ExactPollInterval < 10*time.Millisecond || c.ExactPollInterval > time.Second) {
		return configFieldError("ExactPollInterval", "%s must be between 10ms and 1s", c.ExactPollInterval)
	}
	if c.DiscoveryInterval != 0 && c.DiscoveryInterval < 100*time.Millisecond {
		return configFieldError("DiscoveryInterval", "%s is shorter than 100ms", c.DiscoveryInterval)
	}
	if c.DiscoveryHorizon != 0 && c.DiscoveryInterval != 0 && c.DiscoveryHorizon < 2*c.DiscoveryInterval {
		return configFieldError("DiscoveryHorizon", "%s must be at least twice DiscoveryInterval (%s), or jobs are inserted after their deadline", c.DiscoveryHorizon, c.DiscoveryInterval)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Queues)) {
		if n := c.Queues[name]; n < 1 || n > 10_000 {
			return configFieldError("Queues", "%q has %d workers: must be between 1 and 10000", name, n)
		}
		if name == "" {
			return configFieldError("Queues", "queue name must not be empty")
		}
	}
	return nil
}

// ConfigFieldError is a field of Config out of range. It matches
// ErrInvalidConfig with errors.Is; Field lets a caller that fills the
// config from settings of its own (the runner's keys) name the one at
// fault.
type ConfigFieldError struct {
	// Field is the Config field, such as "SweepParallel".
	Field string
	// Err says what is wrong with its value.
	Err error
}

func (e *ConfigFieldError) Error() string {
	return fmt.Sprintf("%s: %s %v", ErrInvalidConfig, e.Field, e.Err)
}

// Unwrap returns Err.
func (e *ConfigFieldError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigFieldError) Is(target error) bool { return target == ErrInvalidConfig }

func configFieldError(field, format string, args ...any) *ConfigFieldError {
	return &ConfigFieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// AddWorkers registers the attendance workers on workers, for a backend
// that runs its own River client: the jobs it enqueues are then worked by
// its own client or by any wasso-runner, whichever fetches them first. It
// registers attendance.sweep, attendance.settle_event (unless NoDeadlines)
// and attendance.notify_absent (unless NoNotify); every settlement then
// enqueues its absent notices in its own transaction, through the River
// client working the job, before config.FollowUp runs. Each worker carries
// its timeout (SweepTimeout, NotifyTimeout, else JobTimeout) rather than
// inherit the client's, so that the jobs stay bounded, and
// RescueStuckJobsAfter sound, on a client whose JobTimeout is River's -1.
//
// A backend's client that inserts settle_event jobs (ScheduleEventTx)
// carries ExactTimeHook, as NewClient's do. One that takes part in leader
// election must also carry the deadline discovery hook and the periodic
// jobs (see NewClient), or, when it is the leader, nothing discovers
// Django's events; the simplest is to give it LeaderElectionDisabled and
// leave leadership to the runners.
func AddWorkers(workers *river.Workers, pool *pgxpool.Pool, config Config) error {
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return err
	}
	followUp := SettlementFollowUp(config, nil)
	sweep, err := attendance.NewSweepWorker(pool, attendance.SweepConfig{
		FollowUp: followUp,
		Logger:   config.Logger,
		Lookback: config.Lookback,
		Parallel: config.SweepParallel,
		Timeout:  cmp.Or(config.SweepTimeout, config.JobTimeout),
	})
	if err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, sweep); err != nil {
		return fmt.Errorf("register %s worker: %w", attendance.SweepKind, err)
	}
	if !config.NoDeadlines {
		settle, err := attendance.NewSettleEventWorker(pool, attendance.SettleEventConfig{
			BurstLimit: config.BurstLimit,
			FollowUp:   followUp,
			Logger:     config.Logger,
			Lookback:   config.Lookback,
			Timeout:    config.JobTimeout,
		})
		if err != nil {
			return err
		}
		if err := river.AddWorkerSafely(workers, settle); err != nil {
			return fmt.Errorf("register %s worker: %w", attendance.SettleEventKind, err)
		}
	}
	if !config.NoNotify {
		notifyWorker, err := attendance.NewNotifyAbsentWorker(pool, attendance.NotifyAbsentConfig{
			Logger:   config.Logger,
			Notifier: config.Notifier,
			Timeout:  cmp.Or(config.NotifyTimeout, config.JobTimeout),
		})
		if err != nil {
			return err
		}
		if err := river.AddWorkerSafely(workers, notifyWorker); err != nil {
			return fmt.Errorf("register %s worker: %w", attendance.NotifyAbsentKind, err)
		}
	}
	return nil
}

// Kinds lists, sorted, the job kinds AddWorkers registers for config: what
// a runner with this configuration works (celery inspect registered).
func Kinds(config Config) []string {
	kinds := []string{attendance.SweepKind}
	if !config.NoDeadlines {
		kinds = append(kinds, attendance.SettleEventKind)
	}
	if !config.NoNotify {
		kinds = append(kinds, attendance.NotifyAbsentKind)
	}
	slices.Sort(kinds)
	return kinds
}

// SettlementFollowUp is what runs inside every settlement transaction of
// the workers AddWorkers registers: the absent notices (unless NoNotify),
// inserted with inserter, then config.FollowUp, then a warning on
// config.Logger for each settled event with unusual data
// (attendance.ReportAnomalies). A nil inserter means the River client
// working the job (river.ClientFromContext); code that settles outside a
// job, such as wasso-runner sweep, passes a client.
func SettlementFollowUp(config Config, inserter attendance.Inserter) attendance.FollowUpFunc {
	var notify attendance.FollowUpFunc
	if !config.NoNotify {
		notify = attendance.NotifyFollowUp(inserter)
	}
	return attendance.ChainFollowUps(notify, config.FollowUp, attendance.ReportAnomalies(config.Logger))
}

// PeriodicJobs returns the River periodic jobs a client built by NewClient
// runs: config.PeriodicJobs. The sweep is not one of them: it is the stored
// schedule SweepScheduleName, run by the Scheduler.
func PeriodicJobs(config Config) ([]*river.PeriodicJob, error) {
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	return config.PeriodicJobs, nil
}

// NewClient returns a River client on pool that works the attendance jobs
// and, when it is elected leader, runs the schedules of wasso_schedule
// (Scheduler) and the deadline discovery loop (Discoverer), both River
// hooks, so that starting the client is all it takes. It does not start
// the client, and does not touch the database; call
// migrations.CheckScheduler first to fail early on a database that is not
// ready.
//
// The sweep is a stored schedule: the Scheduler of the first client to
// lead seeds DefaultSchedules once (wasso-runner setup does the same ahead
// of time), and from then on the stored schedule is what runs.
//
// Unless NoDeadlines, the client works attendance.QueueExact with its own
// poll interval (ExactPollInterval, 1 s, as a fallback to the leader's wakes)
// and fetch cooldown (10 ms); the other queues keep River's defaults (1 s
// poll, 100 ms cooldown), since nothing in them is due at an instant.
// Whatever the config, the client carries ExactTimeHook, so that the jobs
// of attendance.QueueExact it inserts start at their instants.
//
// The Client it returns is River's client with a Stop and a StopAndCancel
// that also wait for the leader loops the client runs (deadline discovery,
// schedules), so that nothing of the client outlives them.
func NewClient(pool *pgxpool.Pool, config Config) (*Client, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: pool is nil", ErrInvalidConfig)
	}
	if err := config.Validate(); err != nil {
		return nil, err
	}
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	workers := config.Workers
	if workers == nil {
		workers = river.NewWorkers()
	}
	if err := AddWorkers(workers, pool, config); err != nil {
		return nil, err
	}
	periodic, err := PeriodicJobs(config)
	if err != nil {
		return nil, err
	}
	queues := make(map[string]river.QueueConfig, len(config.Queues))
	for name, n := range config.Queues {
		queues[name] = river.QueueConfig{MaxWorkers: n}
	}
	hooks := []rivertype.Hook{&ExactTimeHook{}}
	var discoverer *Discoverer
	if !config.NoDeadlines {
		queues[attendance.QueueExact] = river.QueueConfig{
			MaxWorkers:        cmp.Or(config.Queues[attendance.QueueExact], config.ExactConcurrency),
			FetchCooldown:     min(ExactFetchCooldownDefault, config.ExactPollInterval),
			FetchPollInterval: config.ExactPollInterval,
		}
		discoverer, err = NewDiscoverer(pool, DiscoverConfig{
			Horizon:     config.DiscoveryHorizon,
			Interval:    config.DiscoveryInterval,
			Logger:      config.Logger,
			Lookback:    config.Lookback,
			RiverSchema: config.Schema,
		})
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, discoverer)
	}
	scheduler, err := clientScheduler(pool, config)
	if err != nil {
		return nil, err
	}
	if scheduler != nil {
		hooks = append(hooks, scheduler)
	}
	client, err := river.NewClient(newDriver(pool, config.ListenPool), &river.Config{
		CancelledJobRetentionPeriod: config.CancelledJobRetentionPeriod,
		CompletedJobRetentionPeriod: config.CompletedJobRetentionPeriod,
		DiscardedJobRetentionPeriod: config.DiscardedJobRetentionPeriod,
		Hooks:                       append(hooks, config.Hooks...),
		JobTimeout:                  config.JobTimeout,
		Logger:                      config.Logger,
		PeriodicJobs:                periodic,
		Queues:                      queues,
		RescueStuckJobsAfter:        config.RescueStuckJobsAfter,
		RetryPolicy:                 config.RetryPolicy,
		Schema:                      config.Schema,
		Workers:                     workers,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	wrapped := &Client{Client: client}
	if discoverer != nil {
		discoverer.SetInserter(client)
		wrapped.loops = append(wrapped.loops, discoverer.Wait)
	}
	if scheduler != nil {
		scheduler.Store().SetInserter(client)
		wrapped.loops = append(wrapped.loops, scheduler.Wait)
	}
	return wrapped, nil
}

// Client is the River client NewClient builds. It is River's own client,
// embedded, with every method River documents; only Stop and StopAndCancel
// do more: River stops the leader loops this client runs as hooks by
// cancelling their context, without waiting for them, so these wait until
// each loop has returned (or ctx is done).
//
// Code that needs River's type itself, such as riverui.NewHandler or
// river.ClientFromContext, uses the embedded *river.Client.
type Client struct {
	*river.Client[pgx.Tx]

	// loops wait, each, until a leader loop the client runs has stopped.
	loops []func(ctx context.Context) error
}

// Stop stops the client as River's Stop does (jobs in progress finish) and
// then waits for its leader loops to return.
func (c *Client) Stop(ctx context.Context) error {
	return errors.Join(c.Client.Stop(ctx), c.waitLoops(ctx))
}

// StopAndCancel stops the client as River's StopAndCancel does (jobs in
// progress are cancelled) and then waits for its leader loops to return.
func (c *Client) StopAndCancel(ctx context.Context) error {
	return errors.Join(c.Client.StopAndCancel(ctx), c.waitLoops(ctx))
}

func (c *Client) waitLoops(ctx context.Context) error {
	var errs []error
	for _, wait := range c.loops {
		if err := wait(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listenDriver is River's pgx driver on a pool, except that River's
// notifier LISTENs on a connection of another pool (Config.ListenPool).
// River's notifier takes its connection from the driver's GetListener
// alone; everything else, inserts and their NOTIFY included, goes through
// the embedded driver.
type listenDriver struct {
	*riverpgxv5.Driver
	listen *riverpgxv5.Driver
}

// GetListener returns the listener of the listen pool.
func (d *listenDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	return d.listen.GetListener(params)
}

// newDriver returns River's driver on pool, listening on listen unless it
// is nil.
func newDriver(pool, listen *pgxpool.Pool) riverdriver.Driver[pgx.Tx] {
	if listen == nil {
		return riverpgxv5.New(pool)
	}
	return &listenDriver{Driver: riverpgxv5.New(pool), listen: riverpgxv5.New(listen)}
}
