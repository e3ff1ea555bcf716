package runner

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/wasso/scheduler/attendance"
	wassoriver "github.com/wasso/scheduler/river"
)

// Defaults of the runner's own settings. The River and sweep defaults are
// the library's (wassoriver and attendance), so that a backend embedding
// the library and a wasso-runner behave alike unless configured otherwise.
const (
	// ConnectTimeoutDefault bounds the first connection to the database:
	// past it the runner reports the database unreachable and exits 2.
	ConnectTimeoutDefault = 10 * time.Second
	// HTTPAddrDefault is loopback only: River UI and the metrics are not
	// exposed to the network unless asked to, and then only with
	// credentials.
	HTTPAddrDefault = "127.0.0.1:8080"
	// LogFormatDefault is the log format; json suits log collectors.
	LogFormatDefault = "text"
	// LogLevelDefault is the lowest level logged.
	LogLevelDefault = "info"
	// ShutdownTimeoutDefault is how long running jobs get to finish after
	// SIGTERM before they are cancelled (and retried by River).
	ShutdownTimeoutDefault = 30 * time.Second
	// TimeZoneDefault is the zone times are printed in: the Django
	// backend's TIME_ZONE, so that deadlines read as organisers see them.
	TimeZoneDefault = "Asia/Seoul"
	// EnvPrefix prefixes every environment variable the runner reads.
	EnvPrefix = "WASSO"
	// ConfigFileName is looked for in the working directory, then in
	// ConfigDirSystem, when no --config is given.
	ConfigFileName = "wasso-runner.yaml"
	// ConfigDirSystem is the system-wide configuration directory.
	ConfigDirSystem = "/etc/wasso"
)

// Config is the runner's resolved configuration: every key of
// wasso-runner.example.yaml, after flags, environment, config file and
// defaults have been merged and checked.
type Config struct {
	// DatabaseURL is the Postgres URL or keyword/value connection string.
	// It may hold a password, so it is never printed: use redactURL.
	DatabaseURL string
	// Schema is the schema of River's tables; empty means search_path.
	Schema string
	// TimeZone is the zone CLI output prints times in.
	TimeZone *time.Location

	Log struct {
		Format string
		Level  string
	}

	Database struct {
		// ConnectTimeout bounds the first connection.
		ConnectTimeout time.Duration
		// MaxConns is the pool size; zero sizes it from the queues.
		MaxConns int
	}

	Run struct {
		Concurrency int
		// Queues maps queue names to workers; nil means the default queue
		// with Concurrency workers.
		Queues          map[string]int
		Periodic        bool
		ShutdownTimeout time.Duration
		// JobTimeout bounds every job that sets no timeout of its own.
		JobTimeout time.Duration
		// RescueAfter is how long a job may run before the leader takes
		// it for stuck and retries it; zero derives it from the job
		// timeouts (see wassoriver.Config.RescueStuckJobsAfter).
		RescueAfter time.Duration
	}

	HTTP struct {
		Enabled  bool
		Addr     string
		Username string
		Password string
		ReadOnly bool
	}

	Sweep struct {
		Interval time.Duration
		Timeout  time.Duration
		Lookback time.Duration
		// Parallel is how many batches a sweep (the job, and the sweep
		// command) settles at once over a backlog.
		Parallel int
	}

	// Deadlines configures exact-deadline settlement: per-event jobs on
	// their own queue, scheduled by the leader's discovery loop.
	Deadlines struct {
		Enabled           bool
		Concurrency       int
		PollInterval      time.Duration
		DiscoveryInterval time.Duration
		DiscoveryHorizon  time.Duration
		// BurstLimit is the most events one per-event job settles in its
		// transaction when many deadlines fall at once.
		BurstLimit int
	}

	Notify struct {
		// Enabled is false to enqueue no absent notices.
		Enabled bool
		// Timeout bounds one delivery attempt; zero keeps River's default.
		Timeout time.Duration
		// WebhookURL, when set, delivers notices with a signed POST
		// instead of logging them.
		WebhookURL string
		// WebhookSecret signs each delivery: "whsec_" and base64, or a
		// plain string (see attendance.Secret.WebhookKey). It is never
		// printed.
		WebhookSecret string
		// WebhookTimeout bounds one webhook request.
		WebhookTimeout time.Duration
	}

	Retention struct {
		Completed time.Duration
		Cancelled time.Duration
		Discarded time.Duration
	}

	// Schedules configures the stored schedules (wasso_schedule): the
	// store the schedule commands write through and the leader's
	// scheduler loop.
	Schedules struct {
		// TimeZone is the IANA zone of schedules created without one
		// (schedule add without --tz): the zone their cron expressions
		// are read in.
		TimeZone string
		// MaxCatchUp is how many missed slots of a schedule with missed
		// policy "all" one pass enqueues at most.
		MaxCatchUp int
		// PollInterval is how often the leader's scheduler looks for due
		// schedules when no NOTIFY and no next slot wakes it sooner.
		PollInterval time.Duration
		// CeleryTasks maps Celery task names to the job kinds that
		// replace them, for importing django-celery-beat's periodic
		// tasks. The config loader lower-cases map keys, so the names are
		// stored lower-case: look them up with KindOfCeleryTask.
		CeleryTasks map[string]string
	}

	// File is the config file read, or "" when none was.
	File string

	sources map[string]string
}

// Source says where a key's value came from: "flag --x", "env WASSO_X",
// "config file PATH" or "default".
func (c *Config) Source(key string) string { return c.sources[key] }

// RiverConfig is the library configuration the runner's River client is
// built from.
func (c *Config) RiverConfig() wassoriver.Config {
	// A webhook that does not build was refused when the config loaded.
	notifier, _ := c.notifier()
	return wassoriver.Config{
		BurstLimit:                  c.Deadlines.BurstLimit,
		CancelledJobRetentionPeriod: c.Retention.Cancelled,
		CompletedJobRetentionPeriod: c.Retention.Completed,
		Concurrency:                 c.Run.Concurrency,
		DiscardedJobRetentionPeriod: c.Retention.Discarded,
		DiscoveryHorizon:            c.Deadlines.DiscoveryHorizon,
		DiscoveryInterval:           c.Deadlines.DiscoveryInterval,
		ExactConcurrency:            c.Deadlines.Concurrency,
		ExactPollInterval:           c.Deadlines.PollInterval,
		JobTimeout:                  c.Run.JobTimeout,
		Lookback:                    c.Sweep.Lookback,
		NoDeadlines:                 !c.Deadlines.Enabled,
		NoNotify:                    !c.Notify.Enabled,
		Notifier:                    notifier,
		NotifyTimeout:               c.Notify.Timeout,
		NoPeriodic:                  !c.Run.Periodic,
		Queues:                      maps.Clone(c.Run.Queues),
		RescueStuckJobsAfter:        c.Run.RescueAfter,
		Schema:                      c.Schema,
		SweepInterval:               c.Sweep.Interval,
		SweepParallel:               c.Sweep.Parallel,
		SweepTimeout:                c.Sweep.Timeout,
		// A runner that may not enqueue the periodic jobs does not run
		// the schedules either: the sweep is one of them.
		NoSchedules: !c.Run.Periodic,
		Schedules:   c.scheduleStoreConfig(),
	}
}

// scheduleStoreConfig is the configuration of the schedule store: of the
// leader's scheduler (through RiverConfig) and of the store the schedule
// commands write through. The Logger and RiverSchema are left for the
// caller (NewClient fills them from its own config).
func (c *Config) scheduleStoreConfig() wassoriver.ScheduleStoreConfig {
	return wassoriver.ScheduleStoreConfig{
		DefaultTimeZone: c.Schedules.TimeZone,
		Kinds:           scheduleKinds(),
		MaxCatchUp:      c.Schedules.MaxCatchUp,
		PollInterval:    c.Schedules.PollInterval,
	}
}

// KindOfCeleryTask returns the job kind schedules.celery_tasks maps a
// Celery task name to, matched without regard to case (the config loader
// lower-cases the names), and whether there is one.
func (c *Config) KindOfCeleryTask(task string) (string, bool) {
	kind, ok := c.Schedules.CeleryTasks[strings.ToLower(task)]
	return kind, ok
}

// notifier is the Notifier the configuration asks for: a signed webhook
// when notify.webhook.url is set, else nil (the library's LogNotifier on
// the runner's logger).
func (c *Config) notifier() (attendance.Notifier, error) {
	if c.Notify.WebhookURL == "" {
		return nil, nil
	}
	n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{
		Secret:  attendance.Secret(c.Notify.WebhookSecret),
		Timeout: c.Notify.WebhookTimeout,
		URL:     c.Notify.WebhookURL,
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

type keyKind int

const (
	kindString keyKind = iota
	kindSecret         // a string never printed
	kindInt
	kindBool
	kindDuration
	kindQueues
	kindStringMap // a mapping of strings, or "a=b,c=d" in a flag or the environment
)

// keySpec describes one configuration key. The table below is the single
// source of truth for defaults, environment names and the unknown-key
// check; a test checks that wasso-runner.example.yaml documents each one.
type keySpec struct {
	name string
	kind keyKind
	def  any
	// flag is the flag that sets the key, if any (the flags themselves
	// are declared with their commands).
	flag string
}

var keySpecs = []keySpec{
	{name: "database_url", kind: kindSecret, def: "", flag: "database-url"},
	{name: "schema", kind: kindString, def: "", flag: "schema"},
	{name: "time_zone", kind: kindString, def: TimeZoneDefault, flag: "time-zone"},
	{name: "log.format", kind: kindString, def: LogFormatDefault, flag: "log-format"},
	{name: "log.level", kind: kindString, def: LogLevelDefault, flag: "log-level"},
	{name: "database.connect_timeout", kind: kindDuration, def: ConnectTimeoutDefault.String()},
	{name: "database.max_conns", kind: kindInt, def: 0},
	{name: "run.concurrency", kind: kindInt, def: wassoriver.ConcurrencyDefault, flag: "concurrency"},
	{name: "run.queues", kind: kindQueues, def: "", flag: "queues"},
	{name: "run.periodic", kind: kindBool, def: true, flag: "no-periodic"},
	{name: "run.shutdown_timeout", kind: kindDuration, def: ShutdownTimeoutDefault.String(), flag: "shutdown-timeout"},
	{name: "run.job_timeout", kind: kindDuration, def: wassoriver.JobTimeoutDefault.String()},
	{name: "run.rescue_after", kind: kindDuration, def: "0s"},
	{name: "http.enabled", kind: kindBool, def: true, flag: "no-http"},
	{name: "http.addr", kind: kindString, def: HTTPAddrDefault, flag: "http-addr"},
	{name: "http.username", kind: kindString, def: ""},
	{name: "http.password", kind: kindSecret, def: ""},
	{name: "http.read_only", kind: kindBool, def: false, flag: "read-only"},
	{name: "sweep.interval", kind: kindDuration, def: "5m", flag: "sweep-interval"},
	{name: "sweep.timeout", kind: kindDuration, def: "0s"},
	{name: "sweep.lookback", kind: kindDuration, def: "24h", flag: "lookback"},
	{name: "sweep.parallel", kind: kindInt, def: wassoriver.SweepParallelDefault},
	{name: "deadlines.enabled", kind: kindBool, def: true, flag: "no-deadlines"},
	{name: "deadlines.concurrency", kind: kindInt, def: wassoriver.ExactConcurrencyDefault},
	{name: "deadlines.poll_interval", kind: kindDuration, def: wassoriver.ExactPollIntervalDefault.String()},
	{name: "deadlines.discovery_interval", kind: kindDuration, def: attendance.DiscoveryIntervalDefault.String()},
	{name: "deadlines.discovery_horizon", kind: kindDuration, def: attendance.DiscoveryHorizonDefault.String()},
	{name: "deadlines.burst_limit", kind: kindInt, def: attendance.BurstLimitDefault},
	{name: "notify.enabled", kind: kindBool, def: true, flag: "no-notify"},
	{name: "notify.timeout", kind: kindDuration, def: "0s"},
	{name: "notify.webhook.url", kind: kindString, def: ""},
	{name: "notify.webhook.secret", kind: kindSecret, def: ""},
	{name: "notify.webhook.timeout", kind: kindDuration, def: attendance.WebhookTimeoutDefault.String()},
	{name: "retention.completed", kind: kindDuration, def: wassoriver.CompletedJobRetentionPeriodDefault.String()},
	{name: "retention.cancelled", kind: kindDuration, def: wassoriver.CancelledJobRetentionPeriodDefault.String()},
	{name: "retention.discarded", kind: kindDuration, def: wassoriver.DiscardedJobRetentionPeriodDefault.String()},
	{name: "schedules.time_zone", kind: kindString, def: wassoriver.ScheduleTimeZoneDefault},
	{name: "schedules.max_catch_up", kind: kindInt, def: wassoriver.ScheduleMaxCatchUpDefault},
	{name: "schedules.poll_interval", kind: kindDuration, def: wassoriver.SchedulePollIntervalDefault.String()},
	{name: "schedules.celery_tasks", kind: kindStringMap, def: CeleryTasksDefault},
}

// CeleryTasksDefault is the default of schedules.celery_tasks: the one
// Celery task of the Django backend's beat schedule, and the job kind that
// replaced it.
const CeleryTasksDefault = "scheduler.tasks.mark_absent_for_past_events=" + attendance.SweepKind

// negatedFlags set a boolean key to the opposite of their value:
// --no-http turns http.enabled off.
var negatedFlags = map[string]bool{"no-http": true, "no-notify": true, "no-periodic": true, "no-deadlines": true}

func specOf(key string) (keySpec, bool) {
	for _, s := range keySpecs {
		if s.name == key {
			return s, true
		}
	}
	return keySpec{}, false
}

// envName is the environment variable of a key: WASSO_SWEEP_INTERVAL for
// sweep.interval.
func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// ConfigError is a configuration problem: a bad key or value, an
// unreachable database, a database the runner cannot work on. Main exits 2
// on one, having started nothing.
type ConfigError struct {
	// Key is the configuration key at fault, or "" when the cause is not
	// one key (an unreachable database, a missing file).
	Key string
	// Source is where Key's value came from.
	Source string
	Err    error
}

func (e *ConfigError) Error() string {
	switch {
	case e.Key != "" && e.Source != "" && e.Source != "default":
		return fmt.Sprintf("%s (%s): %v", e.Key, e.Source, e.Err)
	case e.Key != "":
		return fmt.Sprintf("%s: %v", e.Key, e.Err)
	default:
		return e.Err.Error()
	}
}

func (e *ConfigError) Unwrap() error { return e.Err }

// loader resolves configuration with viper. It lives for one invocation
// of Main, so that tests (and the demo) can call Main repeatedly.
type loader struct {
	v    *viper.Viper
	file *viper.Viper // the config file alone, for the unknown-key check
	path string
	// flags are the invocation's flags that set keys, by key.
	flags map[string]*pflag.Flag
}

// loadConfig resolves the configuration for the command whose flags are
// given: flags > environment > config file > defaults.
func loadConfig(flags *pflag.FlagSet) (*Config, []string, error) {
	l := &loader{v: viper.New(), flags: map[string]*pflag.Flag{}}
	l.v.SetEnvPrefix(EnvPrefix)
	l.v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	l.v.AutomaticEnv()
	for _, s := range keySpecs {
		l.v.SetDefault(s.name, s.def)
		if s.flag == "" {
			continue
		}
		f := flags.Lookup(s.flag)
		if f == nil {
			continue
		}
		l.flags[s.name] = f
		if negatedFlags[s.flag] {
			if f.Changed {
				off, err := strconv.ParseBool(f.Value.String())
				if err != nil {
					return nil, nil, &ConfigError{Key: s.name, Source: "flag --" + s.flag, Err: err}
				}
				l.v.Set(s.name, !off)
			}
			continue
		}
		if err := l.v.BindPFlag(s.name, f); err != nil {
			return nil, nil, err
		}
	}
	// Plain DATABASE_URL is what Heroku-style platforms and the Django
	// backend's own settings use; the prefixed one wins when both are set.
	if err := l.v.BindEnv("database_url", envName("database_url"), "DATABASE_URL"); err != nil {
		return nil, nil, err
	}

	if err := l.readFile(flags); err != nil {
		return nil, nil, err
	}
	cfg, err := l.resolve()
	if err != nil {
		return nil, nil, err
	}
	return cfg, unknownEnv(), nil
}

func (l *loader) readFile(flags *pflag.FlagSet) error {
	path, explicit := "", false
	if f := flags.Lookup("config"); f != nil && f.Changed {
		path, explicit = f.Value.String(), true
	} else if env := os.Getenv(EnvPrefix + "_CONFIG"); env != "" {
		path, explicit = env, true
	} else {
		for _, dir := range []string{".", ConfigDirSystem} {
			candidate := filepath.Join(dir, ConfigFileName)
			if _, err := os.Stat(candidate); err == nil {
				path = candidate
				break
			}
		}
	}
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		if explicit {
			return &ConfigError{Err: fmt.Errorf("config file: %w", err)}
		}
		return nil
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	l.path = path
	l.file = viper.New()
	for _, v := range []*viper.Viper{l.v, l.file} {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return &ConfigError{Err: fmt.Errorf("config file %s: %s", path, oneLine(err.Error()))}
		}
	}
	return l.checkFileKeys()
}

// checkFileKeys refuses keys the runner does not know (a typo would
// otherwise be ignored silently) and sections given as scalars.
func (l *loader) checkFileKeys() error {
	sections := map[string]bool{}
	for _, s := range keySpecs {
		if section, _, ok := strings.Cut(s.name, "."); ok {
			sections[section] = true
		}
	}
	for _, key := range slices.Sorted(slices.Values(l.file.AllKeys())) {
		if _, ok := specOf(key); ok {
			continue
		}
		if strings.HasPrefix(key, "run.queues.") || strings.HasPrefix(key, "schedules.celery_tasks.") {
			continue // queue and task names are free
		}
		if sections[key] {
			return &ConfigError{Key: key, Source: "config file " + l.path, Err: errors.New("must be a mapping of keys, not a single value")}
		}
		return &ConfigError{Key: key, Source: "config file " + l.path, Err: errors.New("unknown key (see wasso-runner.example.yaml for the known ones)")}
	}
	return nil
}

func (l *loader) source(key string) string {
	spec, _ := specOf(key)
	if f, ok := l.flags[key]; ok && f.Changed {
		return "flag --" + spec.flag
	}
	names := []string{envName(key)}
	if key == "database_url" {
		names = append(names, "DATABASE_URL")
	}
	for _, name := range names {
		if os.Getenv(name) != "" {
			return "env " + name
		}
	}
	if l.file != nil && l.file.IsSet(key) {
		return "config file " + l.path
	}
	return "default"
}

func (l *loader) resolve() (*Config, error) {
	cfg := &Config{File: l.path, sources: map[string]string{}}
	for _, s := range keySpecs {
		cfg.sources[s.name] = l.source(s.name)
	}
	var firstErr error
	fail := func(key string, err error) {
		if firstErr == nil {
			firstErr = &ConfigError{Key: key, Source: cfg.sources[key], Err: err}
		}
	}
	str := func(key string) string {
		s, err := toString(l.v.Get(key))
		if err != nil {
			if spec, _ := specOf(key); spec.kind == kindSecret {
				// The message of toString holds the value.
				err = fmt.Errorf("must be a string (quote it)")
			}
			fail(key, err)
		}
		return s
	}
	integer := func(key string) int {
		n, err := toInt(l.v.Get(key))
		if err != nil {
			fail(key, err)
		}
		return n
	}
	boolean := func(key string) bool {
		b, err := toBool(l.v.Get(key))
		if err != nil {
			fail(key, err)
		}
		return b
	}
	duration := func(key string) time.Duration {
		d, err := toDuration(l.v.Get(key))
		if err != nil {
			fail(key, err)
		}
		return d
	}

	cfg.DatabaseURL = strings.TrimSpace(str("database_url"))
	cfg.Schema = str("schema")
	zone := str("time_zone")
	cfg.Log.Format = strings.ToLower(str("log.format"))
	cfg.Log.Level = strings.ToLower(str("log.level"))
	cfg.Database.ConnectTimeout = duration("database.connect_timeout")
	cfg.Database.MaxConns = integer("database.max_conns")
	cfg.Run.Concurrency = integer("run.concurrency")
	queues, err := toQueues(l.v.Get("run.queues"))
	if err != nil {
		fail("run.queues", err)
	}
	cfg.Run.Periodic = boolean("run.periodic")
	cfg.Run.ShutdownTimeout = duration("run.shutdown_timeout")
	cfg.Run.JobTimeout = duration("run.job_timeout")
	cfg.Run.RescueAfter = duration("run.rescue_after")
	cfg.HTTP.Enabled = boolean("http.enabled")
	cfg.HTTP.Addr = str("http.addr")
	cfg.HTTP.Username = str("http.username")
	cfg.HTTP.Password = str("http.password")
	cfg.HTTP.ReadOnly = boolean("http.read_only")
	cfg.Sweep.Interval = duration("sweep.interval")
	cfg.Sweep.Timeout = duration("sweep.timeout")
	cfg.Sweep.Lookback = duration("sweep.lookback")
	cfg.Sweep.Parallel = integer("sweep.parallel")
	cfg.Deadlines.Enabled = boolean("deadlines.enabled")
	cfg.Deadlines.Concurrency = integer("deadlines.concurrency")
	cfg.Deadlines.PollInterval = duration("deadlines.poll_interval")
	cfg.Deadlines.DiscoveryInterval = duration("deadlines.discovery_interval")
	cfg.Deadlines.DiscoveryHorizon = duration("deadlines.discovery_horizon")
	cfg.Deadlines.BurstLimit = integer("deadlines.burst_limit")
	cfg.Notify.Enabled = boolean("notify.enabled")
	cfg.Notify.Timeout = duration("notify.timeout")
	cfg.Notify.WebhookURL = str("notify.webhook.url")
	cfg.Notify.WebhookSecret = str("notify.webhook.secret")
	cfg.Notify.WebhookTimeout = duration("notify.webhook.timeout")
	cfg.Retention.Completed = duration("retention.completed")
	cfg.Retention.Cancelled = duration("retention.cancelled")
	cfg.Retention.Discarded = duration("retention.discarded")
	cfg.Schedules.TimeZone = str("schedules.time_zone")
	cfg.Schedules.MaxCatchUp = integer("schedules.max_catch_up")
	cfg.Schedules.PollInterval = duration("schedules.poll_interval")
	celeryTasks, err := toStringMap(l.v.Get("schedules.celery_tasks"))
	if err != nil {
		fail("schedules.celery_tasks", err)
	}
	cfg.Schedules.CeleryTasks = celeryTasks
	if firstErr != nil {
		return nil, firstErr
	}

	// Range checks, in the order of the example file.
	if cfg.Schema != "" && !validIdentifier(cfg.Schema) {
		fail("schema", fmt.Errorf("%q is not a plain Postgres identifier (lower-case letters, digits, _)", cfg.Schema))
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "" {
		fail("time_zone", fmt.Errorf("%q is not a time zone (use an IANA name such as Asia/Seoul or UTC)", zone))
	}
	cfg.TimeZone = loc
	if !slices.Contains([]string{"text", "json"}, cfg.Log.Format) {
		fail("log.format", fmt.Errorf("%q: must be text or json", cfg.Log.Format))
	}
	if _, ok := logLevels[cfg.Log.Level]; !ok {
		fail("log.level", fmt.Errorf("%q: must be debug, info, warn or error", cfg.Log.Level))
	}
	if cfg.Database.ConnectTimeout <= 0 {
		fail("database.connect_timeout", fmt.Errorf("%s: must be positive", cfg.Database.ConnectTimeout))
	}
	if cfg.Database.MaxConns < 0 || cfg.Database.MaxConns > math.MaxInt32 {
		fail("database.max_conns", fmt.Errorf("%d: must be zero (automatic) or positive", cfg.Database.MaxConns))
	}
	if cfg.Run.Concurrency < 1 || cfg.Run.Concurrency > 10_000 {
		fail("run.concurrency", fmt.Errorf("%d: must be between 1 and 10000", cfg.Run.Concurrency))
	}
	for name, n := range queues {
		if n == 0 {
			queues[name] = cfg.Run.Concurrency
		}
	}
	if len(queues) > 0 {
		cfg.Run.Queues = queues
	}
	if cfg.Run.ShutdownTimeout <= 0 {
		fail("run.shutdown_timeout", fmt.Errorf("%s: must be positive", cfg.Run.ShutdownTimeout))
	}
	if cfg.Run.JobTimeout <= 0 {
		fail("run.job_timeout", fmt.Errorf("%s: must be positive: every job needs a bound for stuck jobs to be rescued safely", cfg.Run.JobTimeout))
	}
	if cfg.Run.RescueAfter < 0 {
		fail("run.rescue_after", fmt.Errorf("%s: must be zero (derived from the job timeouts) or positive", cfg.Run.RescueAfter))
	}
	if _, _, err := net.SplitHostPort(cfg.HTTP.Addr); err != nil {
		fail("http.addr", fmt.Errorf("%q is not host:port: %v", cfg.HTTP.Addr, err))
	}
	if (cfg.HTTP.Username == "") != (cfg.HTTP.Password == "") {
		fail("http.password", errors.New("http.username and http.password must be set together"))
	}
	switch {
	case cfg.Sweep.Interval < 0:
		fail("sweep.interval", fmt.Errorf("%s: must be positive", cfg.Sweep.Interval))
	case cfg.Sweep.Interval < time.Second:
		fail("sweep.interval", fmt.Errorf("%s: must be at least 1s", cfg.Sweep.Interval))
	}
	if cfg.Sweep.Timeout < 0 {
		fail("sweep.timeout", fmt.Errorf("%s: must be zero (River's default) or positive", cfg.Sweep.Timeout))
	}
	if cfg.Sweep.Lookback <= 0 {
		fail("sweep.lookback", fmt.Errorf("%s: must be positive", cfg.Sweep.Lookback))
	}
	if n := cfg.Sweep.Parallel; n < 1 || n > wassoriver.SweepParallelMax {
		fail("sweep.parallel", fmt.Errorf("%d: must be between 1 and %d", n, wassoriver.SweepParallelMax))
	}
	if cfg.Notify.Timeout < 0 {
		fail("notify.timeout", fmt.Errorf("%s: must be zero (River's default) or positive", cfg.Notify.Timeout))
	}
	if cfg.Notify.WebhookTimeout <= 0 {
		fail("notify.webhook.timeout", fmt.Errorf("%s: must be positive", cfg.Notify.WebhookTimeout))
	}
	if (cfg.Notify.WebhookURL == "") != (cfg.Notify.WebhookSecret == "") {
		fail("notify.webhook.secret", errors.New("notify.webhook.url and notify.webhook.secret must be set together"))
	}
	if cfg.Notify.WebhookSecret != "" {
		// A "whsec_" secret must be base64 (Standard Webhooks form); named
		// here, not as the URL that the notifier's error would blame.
		if _, err := attendance.Secret(cfg.Notify.WebhookSecret).WebhookKey(); err != nil {
			fail("notify.webhook.secret", err)
		}
	}
	if cfg.Notify.WebhookURL != "" {
		if _, err := cfg.notifier(); err != nil {
			fail("notify.webhook.url", err)
		}
	}
	for key, d := range map[string]time.Duration{
		"retention.cancelled": cfg.Retention.Cancelled,
		"retention.completed": cfg.Retention.Completed,
		"retention.discarded": cfg.Retention.Discarded,
	} {
		if d <= 0 {
			fail(key, fmt.Errorf("%s: must be positive", d))
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if cfg.Deadlines.Concurrency < 1 || cfg.Deadlines.Concurrency > 10_000 {
		fail("deadlines.concurrency", fmt.Errorf("%d: must be between 1 and 10000", cfg.Deadlines.Concurrency))
	}
	if n := cfg.Deadlines.BurstLimit; n < 1 || n > 10_000 {
		fail("deadlines.burst_limit", fmt.Errorf("%d: must be between 1 and 10000", n))
	}
	cfg.checkSchedules(fail)
	for _, key := range []string{"deadlines.poll_interval", "deadlines.discovery_interval", "deadlines.discovery_horizon"} {
		if d := map[string]time.Duration{
			"deadlines.poll_interval":      cfg.Deadlines.PollInterval,
			"deadlines.discovery_interval": cfg.Deadlines.DiscoveryInterval,
			"deadlines.discovery_horizon":  cfg.Deadlines.DiscoveryHorizon,
		}[key]; d <= 0 {
			fail(key, fmt.Errorf("%s: must be positive", d))
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	// The library has the last word on what it accepts (ranges such as
	// the poll interval's); its errors name its fields, translated here to
	// the keys that set them.
	rc := cfg.RiverConfig()
	if err := rc.Validate(); err != nil {
		key := ""
		for _, fk := range libraryFieldKeys {
			if strings.Contains(err.Error(), fk[0]) {
				key = fk[1]
				break
			}
		}
		return nil, &ConfigError{Key: key, Source: cfg.sources[key], Err: err}
	}
	return cfg, nil
}

// checkSchedules checks the schedules keys, and that sweep.interval makes
// a schedule the store accepts, since it seeds the stored sweep.
func (c *Config) checkSchedules(fail func(key string, err error)) {
	zone := c.Schedules.TimeZone
	if _, err := time.LoadLocation(zone); err != nil || zone == "" || zone == "Local" {
		fail("schedules.time_zone", fmt.Errorf("%q is not a time zone (use an IANA name such as Asia/Seoul or UTC)", zone))
		return
	}
	if n := c.Schedules.MaxCatchUp; n < 1 || n > 100_000 {
		fail("schedules.max_catch_up", fmt.Errorf("%d: must be between 1 and 100000", n))
	}
	if d := c.Schedules.PollInterval; d < 10*time.Millisecond || d > time.Hour {
		fail("schedules.poll_interval", fmt.Errorf("%s: must be between 10ms and 1h", d))
	}
	for task, kind := range c.Schedules.CeleryTasks {
		if task == "" || kind == "" {
			fail("schedules.celery_tasks", fmt.Errorf("%q=%q: task names and job kinds must not be empty", task, kind))
		}
	}
	store, err := wassoriver.NewScheduleStore(c.scheduleStoreConfig())
	if err != nil {
		fail("schedules", err)
		return
	}
	// The sweep schedule is seeded from sweep.interval: an interval the
	// store would refuse (longer than a month) is this key's fault.
	for _, s := range wassoriver.DefaultSchedules(wassoriver.Config{SweepInterval: c.Sweep.Interval}, time.Now()) {
		if err := store.Validate(s); err != nil {
			fail("sweep.interval", fmt.Errorf("%s: the stored sweep schedule refuses it: %w", c.Sweep.Interval, err))
		}
	}
}

// libraryFieldKeys maps wassoriver.Config fields to the keys that set
// them, for the library's validation errors. Longer names come first where
// one contains another.
var libraryFieldKeys = [][2]string{
	{"BurstLimit", "deadlines.burst_limit"},
	{"SweepParallel", "sweep.parallel"},
	{"RescueStuckJobsAfter", "run.rescue_after"},
	{"JobTimeout", "run.job_timeout"},
	{"CancelledJobRetentionPeriod", "retention.cancelled"},
	{"CompletedJobRetentionPeriod", "retention.completed"},
	{"DiscardedJobRetentionPeriod", "retention.discarded"},
	{"DiscoveryHorizon", "deadlines.discovery_horizon"},
	{"DiscoveryInterval", "deadlines.discovery_interval"},
	{"ExactConcurrency", "deadlines.concurrency"},
	{"ExactPollInterval", "deadlines.poll_interval"},
	{"Concurrency", "run.concurrency"},
	{"Lookback", "sweep.lookback"},
	{"Queues", "run.queues"},
	{"SweepInterval", "sweep.interval"},
	{"SweepTimeout", "sweep.timeout"},
}

// checkHTTPExposure refuses to serve River UI (which can cancel and delete
// jobs) and the metrics on a non-loopback address without credentials.
func (c *Config) checkHTTPExposure() error {
	if !c.HTTP.Enabled || c.HTTP.Username != "" {
		return nil
	}
	host, _, _ := net.SplitHostPort(c.HTTP.Addr)
	if isLoopback(host) {
		return nil
	}
	return &ConfigError{Key: "http.addr", Source: c.Source("http.addr"), Err: fmt.Errorf(
		"%s is not a loopback address: set http.username and http.password (WASSO_HTTP_USERNAME, WASSO_HTTP_PASSWORD) to serve River UI and metrics there, or bind to 127.0.0.1", c.HTTP.Addr)}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// unknownEnv lists WASSO_* variables that name no key. They are only
// warned about: other tools may share the prefix.
func unknownEnv() []string {
	known := map[string]bool{EnvPrefix + "_CONFIG": true}
	for _, s := range keySpecs {
		known[envName(s.name)] = true
	}
	var unknown []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") && !known[name] && !strings.HasPrefix(name, EnvPrefix+"_TEST_") {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return unknown
}

func toString(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("%v is a %s, want a string", v, typeName(v))
	}
}

func toInt(v any) (int, error) {
	switch v := v.(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", v)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%v is a %s, want an integer", v, typeName(v))
	}
}

func toBool(v any) (bool, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return false, fmt.Errorf("%q is not a boolean (use true or false)", v)
		}
		return b, nil
	default:
		return false, fmt.Errorf("%v is a %s, want true or false", v, typeName(v))
	}
}

// toDuration accepts Go durations ("90s", "5m", "1h30m"). A bare number is
// refused rather than read as nanoseconds, the classic viper surprise.
func toDuration(v any) (time.Duration, error) {
	switch v := v.(type) {
	case time.Duration:
		return v, nil
	case string:
		s := strings.TrimSpace(v)
		if s == "0" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (write it with a unit, e.g. 30s, 5m, 1h)", v)
		}
		return d, nil
	case int, int64, float64:
		if fmt.Sprint(v) == "0" {
			return 0, nil
		}
		return 0, fmt.Errorf("%v has no unit (write e.g. %vs or %vm)", v, v, v)
	default:
		return 0, fmt.Errorf("%v is a %s, want a duration such as 5m", v, typeName(v))
	}
}

// toQueues reads queue workers from a config-file mapping ({default: 4})
// or a flag or environment string ("default=4,notify=2"; a name without
// "=N" gets run.concurrency workers, written as 0 here).
func toQueues(v any) (map[string]int, error) {
	out := map[string]int{}
	switch v := v.(type) {
	case nil:
		return out, nil
	case string:
		for _, p := range splitPairs(v) {
			name, count := p.name, p.value
			n := 0
			if p.hasValue {
				var err error
				n, err = strconv.Atoi(count)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("queue %q: %q is not a positive number of workers", name, count)
				}
			}
			if err := checkQueueName(name); err != nil {
				return nil, err
			}
			out[name] = n
		}
	case map[string]any:
		for name, count := range v {
			n, err := toInt(count)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("queue %q: %v is not a positive number of workers", name, count)
			}
			if err := checkQueueName(name); err != nil {
				return nil, err
			}
			out[name] = n
		}
	default:
		return nil, fmt.Errorf("%v is a %s, want a mapping of queue names to workers", v, typeName(v))
	}
	return out, nil
}

// toStringMap reads a mapping of strings from a config-file mapping
// ({a: b}) or a flag or environment string ("a=b,c=d").
func toStringMap(v any) (map[string]string, error) {
	out := map[string]string{}
	switch v := v.(type) {
	case nil:
		return out, nil
	case string:
		for _, p := range splitPairs(v) {
			if !p.hasValue {
				return nil, fmt.Errorf("%q is not name=value", p.name)
			}
			out[strings.ToLower(p.name)] = p.value
		}
	case map[string]any:
		for name, value := range v {
			s, ok := value.(string)
			if !ok {
				return nil, fmt.Errorf("%s: %v is a %s, want a string", name, value, typeName(value))
			}
			out[strings.ToLower(name)] = s
		}
	default:
		return nil, fmt.Errorf("%v is a %s, want a mapping of names to strings", v, typeName(v))
	}
	return out, nil
}

// pair is one "name=value" (or bare "name") of a flag or environment
// string, both sides trimmed.
type pair struct {
	name, value string
	hasValue    bool
}

// splitPairs splits "a=1, b=2,c" at commas, skipping empty parts: the
// string form of the config keys that hold mappings (run.queues,
// schedules.celery_tasks).
func splitPairs(s string) []pair {
	var out []pair
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		out = append(out, pair{name: strings.TrimSpace(name), value: strings.TrimSpace(value), hasValue: ok})
	}
	return out
}

func checkQueueName(name string) error {
	if name == "" {
		return errors.New("queue name must not be empty")
	}
	if len(name) > 128 {
		return fmt.Errorf("queue name %q is longer than 128 characters", name)
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case int, int64:
		return "number"
	case float64:
		return "decimal number"
	case bool:
		return "boolean"
	case string:
		return "string"
	case map[string]any:
		return "mapping"
	case []any:
		return "list"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func validIdentifier(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}
