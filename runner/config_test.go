package runner_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

// TestConfigErrors: every kind of bad configuration exits 2 with one line
// naming the key (or the cause), and starts nothing (no log line, no
// output).
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	unreachable := []string{"--database-url", "postgres://wasso@127.0.0.1:1/wasso?sslmode=disable"}
	cases := []struct {
		name string
		args []string
		env  []string
		file string // written to wasso-runner.yaml in the working directory
		want string // in the message
		db   string // "migrated" or "bare": a database of the test's own
	}{
		{name: "unknown key", args: []string{"run"}, file: "sweep:\n  intervl: 5m\n", want: "sweep.intervl"},
		{name: "unknown top-level key", args: []string{"run"}, file: "databse_url: x\n", want: "databse_url"},
		{name: "section given a value", args: []string{"run"}, file: "sweep: 5m\n", want: "sweep"},
		{name: "wrong type int", args: []string{"run"}, file: "run:\n  concurrency: four\n", want: "run.concurrency"},
		{name: "wrong type decimal", args: []string{"run"}, file: "run:\n  concurrency: 2.5\n", want: "run.concurrency"},
		{name: "wrong type bool", args: []string{"run"}, file: "http:\n  read_only: yes\n", want: "http.read_only"},
		{name: "wrong type string", args: []string{"run"}, file: "time_zone: [UTC]\n", want: "time_zone"},
		{name: "duration without unit", args: []string{"run"}, file: "sweep:\n  interval: 300\n", want: "sweep.interval"},
		{name: "bad duration env", args: []string{"run"}, env: []string{"WASSO_SWEEP_INTERVAL=5x"}, want: "sweep.interval (env WASSO_SWEEP_INTERVAL)"},
		{name: "bad duration flag", args: []string{"run", "--shutdown-timeout", "soon"}, want: "--shutdown-timeout"},
		{name: "sub-second sweep interval", args: []string{"run", "--sweep-interval", "500ms"}, want: "sweep.interval"},
		{name: "negative sweep interval", args: []string{"run"}, env: []string{"WASSO_SWEEP_INTERVAL=-1m"}, want: "sweep.interval"},
		{name: "poll interval out of the library's range", args: []string{"run"}, env: []string{"WASSO_DEADLINES_POLL_INTERVAL=5ms"}, want: "deadlines.poll_interval (env WASSO_DEADLINES_POLL_INTERVAL)"},
		{name: "horizon shorter than two discovery intervals", args: []string{"run"}, file: "deadlines:\n  discovery_interval: 1m\n  discovery_horizon: 90s\n", want: "deadlines.discovery_horizon"},
		{name: "zero retention", args: []string{"run"}, env: []string{"WASSO_RETENTION_COMPLETED=0s"}, want: "retention.completed"},
		{name: "invalid time zone", args: []string{"run", "--time-zone", "Mars/Olympus_Mons"}, want: "time_zone"},
		{name: "invalid log format", args: []string{"sweep", "--log-format", "xml"}, want: "log.format"},
		{name: "invalid log level", args: []string{"inspect", "stats"}, env: []string{"WASSO_LOG_LEVEL=loud"}, want: "log.level"},
		{name: "bad queues", args: []string{"run", "--queues", "default=many"}, want: "run.queues"},
		{name: "username without password", args: []string{"run"}, env: []string{"WASSO_HTTP_USERNAME=admin"}, want: "http.password"},
		{name: "webhook url without secret", args: []string{"run"}, file: "notify:\n  webhook:\n    url: https://push.example/hook\n", want: "notify.webhook.secret"},
		{name: "webhook url not http", args: []string{"run"}, env: []string{"WASSO_NOTIFY_WEBHOOK_URL=ftp://push.example/hook", "WASSO_NOTIFY_WEBHOOK_SECRET=s3cr3t-value"}, want: "notify.webhook.url"},
		{name: "negative notify timeout", args: []string{"run"}, env: []string{"WASSO_NOTIFY_TIMEOUT=-1s"}, want: "notify.timeout"},
		{name: "non-loopback without credentials", args: []string{"run", "--http-addr", "0.0.0.0:0"}, want: "http.addr"},
		{name: "no database url", args: []string{"run"}, want: "database_url"},
		{name: "unreachable database", args: append([]string{"run"}, unreachable...), want: "database unreachable"},
		{name: "unreachable database, other command", args: append([]string{"jobs", "list"}, unreachable...), want: "database unreachable"},
		{name: "missing config file", args: []string{"run", "--config", "/nonexistent/wasso-runner.yaml"}, want: "config file"},
		{name: "broken yaml", args: []string{"run"}, file: "sweep:\n  interval: [5m\n", want: "config file"},
		{name: "unknown flag", args: []string{"run", "--bogus"}, want: "--bogus"},
		{name: "unknown command", args: []string{"frobnicate"}, want: "frobnicate"},
		{name: "unmigrated database", args: []string{"run", "--no-http"}, db: "bare", want: "database not ready"},
		{name: "invalid schedules time zone", args: []string{"run"}, env: []string{"WASSO_SCHEDULES_TIME_ZONE=Mars/Olympus_Mons"}, want: "schedules.time_zone (env WASSO_SCHEDULES_TIME_ZONE)"},
		{name: "schedules time zone Local", args: []string{"schedule", "list"}, file: "schedules:\n  time_zone: Local\n", want: "schedules.time_zone (config file "},
		{name: "zero max catch-up", args: []string{"run"}, env: []string{"WASSO_SCHEDULES_MAX_CATCH_UP=0"}, want: "schedules.max_catch_up"},
		{name: "schedules poll interval too short", args: []string{"setup"}, env: []string{"WASSO_SCHEDULES_POLL_INTERVAL=1ms"}, want: "schedules.poll_interval"},
		{name: "celery tasks not a mapping", args: []string{"run"}, file: "schedules:\n  celery_tasks: [a, b]\n", want: "schedules.celery_tasks"},
		{name: "celery tasks env not name=kind", args: []string{"run"}, env: []string{"WASSO_SCHEDULES_CELERY_TASKS=tasks.x"}, want: "schedules.celery_tasks"},
		{name: "zero sweep parallel", args: []string{"sweep"}, env: []string{"WASSO_SWEEP_PARALLEL=0"}, want: "sweep.parallel (env WASSO_SWEEP_PARALLEL): 0: must be between 1 and 16"},
		{name: "sweep parallel above the library's bound", args: []string{"run"}, file: "sweep:\n  parallel: 17\n", want: "sweep.parallel (config file "},
		{name: "negative burst limit", args: []string{"run"}, env: []string{"WASSO_DEADLINES_BURST_LIMIT=-1"}, want: "deadlines.burst_limit (env WASSO_DEADLINES_BURST_LIMIT)"},
		{name: "sweep interval longer than a schedule allows", args: []string{"run", "--sweep-interval", "800h"}, want: "sweep.interval (flag --sweep-interval)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tc.file != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "wasso-runner.yaml"), []byte(tc.file), 0o600))
			}
			a := tc.args
			if tc.db != "" {
				db := newDB(t, wassotest.Options{Bare: tc.db == "bare"})
				a = append(a, dbArgs(db)...)
			}
			res := runCLI(t, cliOpts{dir: dir, env: tc.env}, a...)
			require.Equal(t, 2, res.code, res.String())
			require.Empty(t, res.stdout, res.String())
			msg := oneLine(t, res.stderr)
			require.True(t, strings.HasPrefix(msg, "wasso-runner: "), msg)
			require.Contains(t, msg, tc.want)
		})
	}
}

// TestConfigErrorPortInUse: an HTTP address already taken is a
// configuration error too, found before the River client starts.
func TestConfigErrorPortInUse(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	res := runCLI(t, cliOpts{}, args([]string{"run", "--http-addr", ln.Addr().String()}, dbArgs(db))...)
	require.Equal(t, 2, res.code, res.String())
	require.Contains(t, oneLine(t, res.stderr), "http.addr")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM `+db.Schema+`.river_leader`), "no client was started")
}

type configOutput struct {
	File string `json:"file"`
	Keys map[string]struct {
		Value  any    `json:"value"`
		Source string `json:"source"`
	} `json:"keys"`
}

func resolvedConfig(t *testing.T, opts cliOpts, extra ...string) configOutput {
	t.Helper()
	res := runCLI(t, opts, append([]string{"config", "--json"}, extra...)...)
	require.Equal(t, 0, res.code, res.String())
	var out configOutput
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
	return out
}

// TestConfigPrecedence: flags > environment > config file > defaults, for
// the prefixed environment, plain DATABASE_URL and the config file
// locations.
func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wasso-runner.yaml"), []byte("log:\n  level: warn\nsweep:\n  interval: 10m\n"), 0o600))

	// Default.
	out := resolvedConfig(t, cliOpts{})
	require.Equal(t, "info", out.Keys["log.level"].Value)
	require.Equal(t, "default", out.Keys["log.level"].Source)
	require.Empty(t, out.File)

	// The config file in the working directory.
	out = resolvedConfig(t, cliOpts{dir: dir})
	require.Equal(t, "warn", out.Keys["log.level"].Value)
	require.Equal(t, "10m0s", out.Keys["sweep.interval"].Value)
	require.Contains(t, out.Keys["log.level"].Source, "config file")
	require.Equal(t, filepath.Join(dir, "wasso-runner.yaml"), out.File)

	// The environment beats the file.
	out = resolvedConfig(t, cliOpts{dir: dir, env: []string{"WASSO_LOG_LEVEL=error"}})
	require.Equal(t, "error", out.Keys["log.level"].Value)
	require.Equal(t, "env WASSO_LOG_LEVEL", out.Keys["log.level"].Source)
	require.Equal(t, "10m0s", out.Keys["sweep.interval"].Value, "keys the environment does not set still come from the file")

	// A flag beats the environment.
	out = resolvedConfig(t, cliOpts{dir: dir, env: []string{"WASSO_LOG_LEVEL=error"}}, "--log-level", "debug")
	require.Equal(t, "debug", out.Keys["log.level"].Value)
	require.Equal(t, "flag --log-level", out.Keys["log.level"].Source)

	// --config and WASSO_CONFIG name a file elsewhere.
	other := filepath.Join(t.TempDir(), "other.yaml")
	require.NoError(t, os.WriteFile(other, []byte("time_zone: UTC\n"), 0o600))
	out = resolvedConfig(t, cliOpts{dir: dir}, "--config", other)
	require.Equal(t, "UTC", out.Keys["time_zone"].Value)
	require.Equal(t, "info", out.Keys["log.level"].Value, "the working directory's file is not read when --config is given")
	out = resolvedConfig(t, cliOpts{env: []string{"WASSO_CONFIG=" + other}})
	require.Equal(t, "UTC", out.Keys["time_zone"].Value)

	// Plain DATABASE_URL is accepted; WASSO_DATABASE_URL wins over it.
	out = resolvedConfig(t, cliOpts{env: []string{"DATABASE_URL=postgres://plain@db/plain"}})
	require.Equal(t, "postgres://plain@db/plain", out.Keys["database_url"].Value)
	require.Equal(t, "env DATABASE_URL", out.Keys["database_url"].Source)
	out = resolvedConfig(t, cliOpts{env: []string{"DATABASE_URL=postgres://plain@db/plain", "WASSO_DATABASE_URL=postgres://wasso@db/wasso"}})
	require.Equal(t, "postgres://wasso@db/wasso", out.Keys["database_url"].Value)
}

// TestExampleConfig: wasso-runner.example.yaml is valid and documents every
// key the runner knows (each resolves from the file, none from defaults).
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	example, err := filepath.Abs("wasso-runner.example.yaml")
	require.NoError(t, err)
	out := resolvedConfig(t, cliOpts{}, "--config", example)
	require.NotEmpty(t, out.Keys)
	for key, v := range out.Keys {
		require.Contains(t, v.Source, "config file", "key %s is not in wasso-runner.example.yaml", key)
	}
	// And the example's values are the defaults, but for the keys it
	// sets on purpose, saying so: the schedules' zone is UTC in the code
	// (the library's default) and Asia/Seoul for a Wasso deployment.
	deliberate := map[string]any{"schedules.time_zone": "Asia/Seoul"}
	defaults := resolvedConfig(t, cliOpts{})
	for key, v := range out.Keys {
		if want, ok := deliberate[key]; ok {
			require.Equal(t, want, v.Value, "example value of %s", key)
			continue
		}
		require.Equal(t, defaults.Keys[key].Value, v.Value, "example value of %s differs from the default", key)
	}
	require.Equal(t, "UTC", defaults.Keys["schedules.time_zone"].Value)
}
