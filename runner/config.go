package runner

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/wasso/scheduler/attendance"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

const (
	// EnvPrefix prefixes every environment variable the runner reads.
	EnvPrefix = "WASSO"
	// ConfigFileName is looked for in the working directory, then in
	// ConfigDirSystem, when no --config is given.
	ConfigFileName = "wasso-runner.yaml"
	// ConfigDirSystem is the system-wide configuration directory.
	ConfigDirSystem = "/etc/wasso"
)

// Config is the runner's resolved configuration. Each key is declared
// once, by a field here, and documented in wasso-runner.example.yaml (a
// test checks that the file sets every key to its default). The tags:
//
//   - mapstructure: the key's name, the path of these tags
//     (sweep.interval); its environment variable follows from it
//     (WASSO_SWEEP_INTERVAL).
//   - default: the default, as the config file would write it. A key with
//     a river tag and no default tag takes the library's default
//     (wassoriver.Config.WithDefaults), so that a backend embedding the
//     library and a wasso-runner behave alike.
//   - flag: the flag that sets the key, declared with its commands; a
//     "no-" flag sets a boolean key to the opposite of its value.
//   - check: a range ("1..10000", "1s..", "10ms..1h"), "positive", or the
//     allowed values ("text|json").
//   - river: the wassoriver.Config field the key sets, a path for nested
//     ones; "!" sets the negation. The library's validation errors name
//     these fields and are reported against the key.
//   - secret: masked when printed ("url": the password of a database URL,
//     "webhook": the query of a webhook URL, "true": the whole value).
type Config struct {
	DatabaseURL string         `mapstructure:"database_url" flag:"database-url" secret:"url"`
	Schema      string         `mapstructure:"schema" flag:"schema" river:"Schema"`
	TimeZone    *time.Location `mapstructure:"time_zone" flag:"time-zone" default:"Asia/Seoul"`

	Log struct {
		Format string `mapstructure:"format" flag:"log-format" default:"text" check:"text|json"`
		Level  string `mapstructure:"level" flag:"log-level" default:"info" check:"debug|info|warn|error"`
	} `mapstructure:"log"`

	Database struct {
		ConnectTimeout time.Duration `mapstructure:"connect_timeout" default:"10s" check:"positive"`
		// ListenURL is a direct connection for LISTEN alone, when
		// database_url goes through a pooler in transaction mode.
		ListenURL string `mapstructure:"listen_url" secret:"url"`
		MaxConns  int    `mapstructure:"max_conns" default:"0" check:"0..2147483647"`
	} `mapstructure:"database"`

	Run struct {
		Concurrency int `mapstructure:"concurrency" flag:"concurrency" check:"1..10000" river:"Concurrency"`
		// Queues is nil for the default queue with Concurrency workers.
		Queues          map[string]int `mapstructure:"queues" flag:"queues" default:"" river:"Queues"`
		Periodic        bool           `mapstructure:"periodic" flag:"no-periodic" river:"!NoSchedules"`
		ShutdownTimeout time.Duration  `mapstructure:"shutdown_timeout" flag:"shutdown-timeout" default:"30s" check:"positive"`
		JobTimeout      time.Duration  `mapstructure:"job_timeout" check:"positive" river:"JobTimeout"`
		RescueAfter     time.Duration  `mapstructure:"rescue_after" default:"0s" check:"0s.." river:"RescueStuckJobsAfter"`
	} `mapstructure:"run"`

	HTTP struct {
		Enabled  bool   `mapstructure:"enabled" flag:"no-http" default:"true"`
		Addr     string `mapstructure:"addr" flag:"http-addr" default:"127.0.0.1:8080"`
		Username string `mapstructure:"username"`
		Password string `mapstructure:"password" secret:"true"`
		ReadOnly bool   `mapstructure:"read_only" flag:"read-only"`
	} `mapstructure:"http"`

	Sweep struct {
		Interval time.Duration `mapstructure:"interval" flag:"sweep-interval" check:"1s.." river:"SweepInterval"`
		Timeout  time.Duration `mapstructure:"timeout" check:"0s.." river:"SweepTimeout"`
		Lookback time.Duration `mapstructure:"lookback" flag:"lookback" check:"positive" river:"Lookback"`
		Parallel int           `mapstructure:"parallel" check:"1..16" river:"SweepParallel"`
	} `mapstructure:"sweep"`

	Deadlines struct {
		Enabled           bool          `mapstructure:"enabled" flag:"no-deadlines" river:"!NoDeadlines"`
		Concurrency       int           `mapstructure:"concurrency" check:"1..10000" river:"ExactConcurrency"`
		PollInterval      time.Duration `mapstructure:"poll_interval" check:"positive" river:"ExactPollInterval"`
		DiscoveryInterval time.Duration `mapstructure:"discovery_interval" check:"positive" river:"DiscoveryInterval"`
		DiscoveryHorizon  time.Duration `mapstructure:"discovery_horizon" check:"positive" river:"DiscoveryHorizon"`
		BurstLimit        int           `mapstructure:"burst_limit" check:"1..10000" river:"BurstLimit"`
	} `mapstructure:"deadlines"`

	Notify struct {
		Enabled bool          `mapstructure:"enabled" flag:"no-notify" river:"!NoNotify"`
		Timeout time.Duration `mapstructure:"timeout" check:"0s.." river:"NotifyTimeout"`
		Webhook struct {
			URL    string `mapstructure:"url" secret:"webhook"`
			Secret string `mapstructure:"secret" secret:"true"`
			// Timeout's default is attendance.WebhookTimeoutDefault.
			Timeout time.Duration `mapstructure:"timeout" default:"10s" check:"positive"`
		} `mapstructure:"webhook"`
	} `mapstructure:"notify"`

	Retention struct {
		Completed time.Duration `mapstructure:"completed" check:"positive" river:"CompletedJobRetentionPeriod"`
		Cancelled time.Duration `mapstructure:"cancelled" check:"positive" river:"CancelledJobRetentionPeriod"`
		Discarded time.Duration `mapstructure:"discarded" check:"positive" river:"DiscardedJobRetentionPeriod"`
	} `mapstructure:"retention"`

	Schedules struct {
		TimeZone     *time.Location `mapstructure:"time_zone" river:"Schedules.DefaultTimeZone"`
		MaxCatchUp   int            `mapstructure:"max_catch_up" check:"1..100000" river:"Schedules.MaxCatchUp"`
		PollInterval time.Duration  `mapstructure:"poll_interval" check:"10ms..1h" river:"Schedules.PollInterval"`
		// CeleryTasks maps Celery task names, lower-cased, to the job
		// kinds that replace them (schedule import-celery-beat).
		CeleryTasks map[string]string `mapstructure:"celery_tasks" default:"scheduler.tasks.mark_absent_for_past_events=attendance.sweep"`
	} `mapstructure:"schedules"`

	// File is the config file read, or "" when none was.
	File string `mapstructure:"-"`

	sources map[string]string
}

// Source says where a key's value came from: "flag --x", "env WASSO_X",
// "config file PATH" or "default".
func (c *Config) Source(key string) string { return c.sources[key] }

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

func newLoader(flags *pflag.FlagSet) *loader {
	l := &loader{v: viper.New(), flags: map[string]*pflag.Flag{}}
	library := reflect.ValueOf(wassoriver.Config{}.WithDefaults())
	for _, k := range configKeys {
		if def, ok := k.field.Tag.Lookup("default"); ok {
			l.v.SetDefault(k.name, def)
		} else if path := k.tag("river"); path != "" {
			name, negate := riverField(path)
			v := library.FieldByIndex(fieldIndex(library.Type(), name)).Interface()
			if negate {
				v = !v.(bool)
			}
			l.v.SetDefault(k.name, v)
		}
		if f := flags.Lookup(k.tag("flag")); f != nil {
			l.flags[k.name] = f
		}
	}
	return l
}

// loadConfig resolves the configuration for the command whose flags are
// given: flags > environment > config file > defaults.
func loadConfig(flags *pflag.FlagSet) (*Config, []string, error) {
	l := newLoader(flags)
	l.v.SetEnvPrefix(EnvPrefix)
	l.v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	l.v.AutomaticEnv()
	for key, f := range l.flags {
		if !strings.HasPrefix(f.Name, "no-") {
			if err := l.v.BindPFlag(key, f); err != nil {
				return nil, nil, err
			}
			continue
		}
		if f.Changed {
			off, err := strconv.ParseBool(f.Value.String())
			if err != nil {
				return nil, nil, &ConfigError{Key: key, Source: "flag --" + f.Name, Err: err}
			}
			l.v.Set(key, !off)
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
	cfg, err := l.decode()
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.check(); err != nil {
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
	for _, key := range slices.Sorted(slices.Values(l.file.AllKeys())) {
		known := slices.ContainsFunc(configKeys, func(k configKey) bool {
			// The names in a mapping (queues, Celery tasks) are free.
			return k.name == key || k.field.Type.Kind() == reflect.Map && strings.HasPrefix(key, k.name+".")
		})
		if known {
			continue
		}
		err := errors.New("unknown key (see wasso-runner.example.yaml for the known ones)")
		if slices.ContainsFunc(configKeys, func(k configKey) bool { return strings.HasPrefix(k.name, key+".") }) {
			err = errors.New("must be a mapping of keys, not a single value")
		}
		return &ConfigError{Key: key, Source: "config file " + l.path, Err: err}
	}
	return nil
}

func (l *loader) source(key string) string {
	if f, ok := l.flags[key]; ok && f.Changed {
		return "flag --" + f.Name
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

// check checks what one key alone cannot say, then lets the library have
// the last word on what it accepts; its field errors are reported against
// the keys that set the fields.
func (c *Config) check() error {
	fail := func(key string, err error) error {
		return &ConfigError{Key: key, Source: c.sources[key], Err: err}
	}
	if c.Schema != "" && !validIdentifier(c.Schema) {
		return fail("schema", fmt.Errorf("%q is not a plain Postgres identifier (lower-case letters, digits, _)", c.Schema))
	}
	for name, n := range c.Run.Queues {
		if n == 0 {
			c.Run.Queues[name] = c.Run.Concurrency
		}
	}
	if len(c.Run.Queues) == 0 {
		c.Run.Queues = nil
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		return fail("http.addr", fmt.Errorf("%q is not host:port: %v", c.HTTP.Addr, err))
	}
	if (c.HTTP.Username == "") != (c.HTTP.Password == "") {
		return fail("http.password", errors.New("http.username and http.password must be set together"))
	}
	if (c.Notify.Webhook.URL == "") != (c.Notify.Webhook.Secret == "") {
		return fail("notify.webhook.secret", errors.New("notify.webhook.url and notify.webhook.secret must be set together"))
	}
	if c.Notify.Webhook.Secret != "" {
		// A "whsec_" secret must be base64 (Standard Webhooks form); named
		// here, not as the URL that the notifier's error would blame.
		if _, err := attendance.Secret(c.Notify.Webhook.Secret).WebhookKey(); err != nil {
			return fail("notify.webhook.secret", err)
		}
		if _, err := c.notifier(); err != nil {
			return fail("notify.webhook.url", err)
		}
	}
	lowered := make(map[string]string, len(c.Schedules.CeleryTasks))
	for task, kind := range c.Schedules.CeleryTasks {
		if task == "" || kind == "" {
			return fail("schedules.celery_tasks", fmt.Errorf("%q=%q: task names and job kinds must not be empty", task, kind))
		}
		lowered[strings.ToLower(task)] = kind
	}
	c.Schedules.CeleryTasks = lowered

	rc := c.RiverConfig()
	if err := rc.Validate(); err != nil {
		key := ""
		var fieldErr *wassoriver.ConfigFieldError
		if errors.As(err, &fieldErr) {
			key = c.keyOfRiverField(fieldErr.Field)
		}
		return fail(key, err)
	}
	store, err := schedule.NewStore(rc.Schedules)
	if err != nil {
		return fail("schedules", err)
	}
	// The sweep schedule is seeded from sweep.interval: an interval the
	// store would refuse (longer than a month) is this key's fault.
	for _, s := range wassoriver.DefaultSchedules(rc, time.Now()) {
		if err := store.Validate(s); err != nil {
			return fail("sweep.interval", fmt.Errorf("%s: the stored sweep schedule refuses it: %w", c.Sweep.Interval, err))
		}
	}
	return nil
}

func (c *Config) keyOfRiverField(field string) string {
	for _, k := range configKeys {
		if name, _ := riverField(k.tag("river")); name == field {
			return k.name
		}
	}
	return ""
}

// RiverConfig is the library configuration the runner's River client is
// built from: every key with a river tag, the notifier and the schedule
// kinds.
func (c *Config) RiverConfig() wassoriver.Config {
	var rc wassoriver.Config
	dst, src := reflect.ValueOf(&rc).Elem(), reflect.ValueOf(c).Elem()
	for _, k := range configKeys {
		for path := range strings.SplitSeq(k.tag("river"), ",") {
			if path == "" {
				continue
			}
			name, negate := riverField(path)
			v := src.FieldByIndex(k.index)
			switch {
			case negate:
				v = reflect.ValueOf(!v.Bool())
			case v.Type() == reflect.TypeFor[*time.Location]():
				v = reflect.ValueOf(v.Interface().(*time.Location).String())
			case v.Kind() == reflect.Map: // the library's copy
				v = reflect.ValueOf(maps.Clone(v.Interface().(map[string]int)))
			}
			dst.FieldByIndex(fieldIndex(dst.Type(), name)).Set(v)
		}
	}
	// A webhook that does not build was refused when the config loaded.
	rc.Notifier, _ = c.notifier()
	rc.Schedules.Kinds = scheduleKinds()
	return rc
}

// scheduleStoreConfig is the configuration of the schedule store: of the
// leader's scheduler (through RiverConfig) and of the store the schedule
// commands write through. The Logger is left for the caller (NewClient
// fills it from its own config).
func (c *Config) scheduleStoreConfig() schedule.StoreConfig {
	return c.RiverConfig().Schedules
}

// notifier is the Notifier the configuration asks for: a signed webhook
// when notify.webhook.url is set, else nil (the library's LogNotifier on
// the runner's logger).
func (c *Config) notifier() (attendance.Notifier, error) {
	if c.Notify.Webhook.URL == "" {
		return nil, nil
	}
	n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{
		Secret:  attendance.Secret(c.Notify.Webhook.Secret),
		Timeout: c.Notify.Webhook.Timeout,
		URL:     c.Notify.Webhook.URL,
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// unknownEnv lists WASSO_* variables that name no key. They are only
// warned about: other tools may share the prefix.
func unknownEnv() []string {
	known := map[string]bool{EnvPrefix + "_CONFIG": true}
	for _, k := range configKeys {
		known[envName(k.name)] = true
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
