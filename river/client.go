package wassoriver

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/wasso/scheduler/attendance"
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
)

// ErrInvalidConfig is returned, wrapped with the offending field named,
// when a Config value is out of range.
var ErrInvalidConfig = errors.New("invalid config")

// Config configures the River client and the attendance jobs.
type Config struct {
	// CancelledJobRetentionPeriod: see CancelledJobRetentionPeriodDefault.
	CancelledJobRetentionPeriod time.Duration

	// CompletedJobRetentionPeriod: see CompletedJobRetentionPeriodDefault.
	CompletedJobRetentionPeriod time.Duration

	// Concurrency is how many jobs the default queue works at once when
	// Queues is empty. Zero means ConcurrencyDefault.
	Concurrency int

	// DiscardedJobRetentionPeriod: see DiscardedJobRetentionPeriodDefault.
	DiscardedJobRetentionPeriod time.Duration

	// FollowUp, if set, runs inside every settlement transaction of the
	// sweep, for jobs that must commit with the settlement.
	FollowUp attendance.FollowUpFunc

	// Logger is used by River and by the attendance workers. Nil discards.
	Logger *slog.Logger

	// Lookback is how old a deadline the sweep still settles. Zero means
	// attendance.LookbackDefault.
	Lookback time.Duration

	// NoPeriodic leaves the periodic sweep out: the client works jobs but
	// never enqueues sweeps, even when it is the leader.
	NoPeriodic bool

	// PeriodicJobs are added to the client's periodic jobs, after the sweep.
	PeriodicJobs []*river.PeriodicJob

	// Queues maps queue names to how many jobs each works at once. Empty
	// means the default queue with Concurrency workers.
	Queues map[string]int

	// Schema is the Postgres schema of River's tables. Empty means
	// search_path.
	Schema string

	// SweepInterval is how often the periodic sweep runs. Zero means
	// attendance.SweepIntervalDefault.
	SweepInterval time.Duration

	// SweepTimeout bounds one sweep job. Zero keeps River's job timeout.
	SweepTimeout time.Duration

	// Workers, if set, is the registry the attendance workers are added to,
	// for a client that also works jobs of its own. Nil means a new one.
	Workers *river.Workers
}

// WithDefaults returns a copy of the config with zero values replaced by
// their defaults.
func (c Config) WithDefaults() Config {
	c.CancelledJobRetentionPeriod = cmp.Or(c.CancelledJobRetentionPeriod, CancelledJobRetentionPeriodDefault)
	c.CompletedJobRetentionPeriod = cmp.Or(c.CompletedJobRetentionPeriod, CompletedJobRetentionPeriodDefault)
	c.Concurrency = cmp.Or(c.Concurrency, ConcurrencyDefault)
	c.DiscardedJobRetentionPeriod = cmp.Or(c.DiscardedJobRetentionPeriod, DiscardedJobRetentionPeriodDefault)
	c.Lookback = cmp.Or(c.Lookback, attendance.LookbackDefault)
	c.SweepInterval = cmp.Or(c.SweepInterval, attendance.SweepIntervalDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{QueueDefault: c.Concurrency}
	}
	return c
}

// Validate returns an error naming the first field out of range.
func (c *Config) Validate() error {
	durations := []struct {
		name  string
		value time.Duration
	}{
		{"CancelledJobRetentionPeriod", c.CancelledJobRetentionPeriod},
		{"CompletedJobRetentionPeriod", c.CompletedJobRetentionPeriod},
		{"DiscardedJobRetentionPeriod", c.DiscardedJobRetentionPeriod},
		{"Lookback", c.Lookback},
		{"SweepInterval", c.SweepInterval},
		{"SweepTimeout", c.SweepTimeout},
	}
	for _, d := range durations {
		if d.value < 0 {
			return fmt.Errorf("%w: %s %s must not be negative", ErrInvalidConfig, d.name, d.value)
		}
	}
	if c.SweepInterval > 0 && c.SweepInterval < time.Second {
		return fmt.Errorf("%w: SweepInterval %s is shorter than one second", ErrInvalidConfig, c.SweepInterval)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("%w: Concurrency %d must not be negative", ErrInvalidConfig, c.Concurrency)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Queues)) {
		if n := c.Queues[name]; n < 1 || n > 10_000 {
			return fmt.Errorf("%w: Queues[%q] = %d: workers must be between 1 and 10000", ErrInvalidConfig, name, n)
		}
		if name == "" {
			return fmt.Errorf("%w: Queues: queue name must not be empty", ErrInvalidConfig)
		}
	}
	return nil
}

// AddWorkers registers the attendance workers on workers, for a backend
// that runs its own River client: the jobs it enqueues are then worked by
// its own client or by any wasso-runner, whichever fetches them first.
func AddWorkers(workers *river.Workers, pool *pgxpool.Pool, config Config) error {
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return err
	}
	sweep, err := attendance.NewSweepWorker(pool, attendance.SweepConfig{
		FollowUp: config.FollowUp,
		Logger:   config.Logger,
		Lookback: config.Lookback,
		Timeout:  config.SweepTimeout,
	})
	if err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, sweep); err != nil {
		return fmt.Errorf("register %s worker: %w", attendance.SweepKind, err)
	}
	return nil
}

// PeriodicJobs returns the periodic jobs the scheduler runs: the sweep
// (unless NoPeriodic) followed by config.PeriodicJobs.
func PeriodicJobs(config Config) ([]*river.PeriodicJob, error) {
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	var jobs []*river.PeriodicJob
	if !config.NoPeriodic {
		sweep, err := attendance.PeriodicSweep(config.SweepInterval)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, sweep)
	}
	return append(jobs, config.PeriodicJobs...), nil
}

// NewClient returns a River client on pool that works the attendance jobs
// and, when it is elected leader, enqueues the periodic sweep. It does not
// start the client, and does not touch the database; call
// migrations.CheckScheduler first to fail early on a database that is not
// ready.
func NewClient(pool *pgxpool.Pool, config Config) (*river.Client[pgx.Tx], error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: pool is nil", ErrInvalidConfig)
	}
	if err := config.Validate(); err != nil {
		return nil, err
	}
	config = config.WithDefaults()
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
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		CancelledJobRetentionPeriod: config.CancelledJobRetentionPeriod,
		CompletedJobRetentionPeriod: config.CompletedJobRetentionPeriod,
		DiscardedJobRetentionPeriod: config.DiscardedJobRetentionPeriod,
		Logger:                      config.Logger,
		PeriodicJobs:                periodic,
		Queues:                      queues,
		Schema:                      config.Schema,
		Workers:                     workers,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}
