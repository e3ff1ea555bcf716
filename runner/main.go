package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/wasso/scheduler/attendance"
)

// Exit codes of Main.
const (
	// ExitOK: the command did what it was asked.
	ExitOK = 0
	// ExitFailure: the command started and failed (a query failed, a
	// confirmation was refused, jobs could not be found).
	ExitFailure = 1
	// ExitConfig: bad flags, configuration or environment, an unreachable
	// or unprepared database. Nothing was started or changed.
	ExitConfig = 2
)

// Env is what Main reads and writes besides its arguments, so that tests
// and the demo can run it in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// HardStop, if not nil, is closed when the user insists on stopping
	// (a second SIGINT or SIGTERM): run then cancels running jobs at once
	// instead of waiting for them.
	HardStop <-chan struct{}
	// Process is true when Main is the process's main function (the
	// wasso-runner binary) and false when a program or a test calls it in
	// process. Only then does run change process-wide settings: see
	// RunProcs.
	Process bool
}

// app is the state of one invocation of Main, shared by the commands: the
// resolved configuration, the logger and the standard streams. The demo
// command (demo.go) receives it too.
type app struct {
	env      Env
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	hardStop <-chan struct{}

	// cfg is nil until the root command's PersistentPreRunE has loaded it.
	cfg    *Config
	logger *slog.Logger
	redact *redactor
}

// Main runs wasso-runner with args (os.Args[1:]) and returns the process
// exit code. ctx is cancelled on the first SIGINT or SIGTERM.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	a := &app{
		env:      env,
		stdin:    env.Stdin,
		stdout:   env.Stdout,
		stderr:   env.Stderr,
		hardStop: env.HardStop,
		logger:   discardLogger(),
		redact:   &redactor{},
	}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	msg := a.redact.redact(oneLine(err.Error()))
	if h := hint(err); h != "" {
		msg += " (" + h + ")"
	}
	fmt.Fprintln(env.Stderr, "wasso-runner: "+msg)
	if exitCode(err) == ExitConfig {
		return ExitConfig
	}
	return ExitFailure
}

// usageError is a command-line mistake: an unknown flag or command, a
// missing argument.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var (
		cfgErr   *ConfigError
		usageErr *usageError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &cfgErr), errors.As(err, &usageErr):
		return ExitConfig
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"):
		// cobra's own messages, which it returns untyped.
		return ExitConfig
	default:
		return ExitFailure
	}
}

// annotationNoConfig marks commands that run without loading the
// configuration (version, help, completion), so that they work even where
// the configuration is broken.
const annotationNoConfig = "wasso_no_config"

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "wasso-runner",
		Short: "Run and operate the Wasso scheduler (River on Postgres)",
		Long: `wasso-runner works the Wasso scheduler's jobs and operates its queue.

It replaces celery worker, celery beat (with django-celery-beat's stored
schedules), celery inspect, celery purge and Flower: every runner works
jobs, one of them (elected through Postgres) runs the schedules stored in
Postgres (the attendance sweep among them; see wasso-runner schedule), and
River UI, health checks and Prometheus metrics are served over HTTP.

Configuration: flags > environment (WASSO_*, e.g. WASSO_DATABASE_URL; plain
DATABASE_URL too) > config file (--config, WASSO_CONFIG, else
./wasso-runner.yaml or /etc/wasso/wasso-runner.yaml) > defaults. See
wasso-runner.example.yaml for every key.

Exit codes: 0 success, 1 failure, 2 bad configuration or usage (nothing was
started).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			for c := cmd; c != nil; c = c.Parent() {
				if c.Annotations[annotationNoConfig] != "" || c.Name() == "completion" || c.Name() == "help" {
					return nil
				}
			}
			return a.loadConfig(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q (see wasso-runner --help)", args[0])
			}
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%v (see %s --help)", err, cmd.CommandPath())
	})
	root.CompletionOptions.HiddenDefaultCmd = true
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (default ./"+ConfigFileName+", then "+ConfigDirSystem+"/"+ConfigFileName+"; env WASSO_CONFIG)")
	pf.String("database-url", "", "Postgres URL (env WASSO_DATABASE_URL or DATABASE_URL; key database_url)")
	pf.String("schema", "", "schema of River's tables; empty: search_path (key schema)")
	pf.String("log-format", defaultConfig.Log.Format, "log format: text or json (key log.format)")
	pf.String("log-level", defaultConfig.Log.Level, "log level: debug, info, warn or error (key log.level)")
	pf.String("time-zone", defaultConfig.TimeZone.String(), "time zone times are printed in (key time_zone)")

	root.AddCommand(
		a.runCmd(),
		a.migrateCmd(),
		a.setupCmd(),
		a.scheduleCmd(),
		a.sweepCmd(),
		a.inspectCmd(),
		a.jobsCmd(),
		a.configCmd(),
		a.versionCmd(),
		a.demoCmd(),
	)
	return root
}

func (a *app) loadConfig(flags *pflag.FlagSet) error {
	cfg, unknown, err := loadConfig(flags)
	if err != nil {
		return err
	}
	a.cfg = cfg
	a.redact.add(cfg.HTTP.Password)
	a.redact.add(cfg.Notify.Webhook.Secret)
	// A token in the webhook URL's query or user info: the notifier never
	// prints them, and the logger scrubs them should anything else.
	for _, s := range attendance.URLSecrets(cfg.Notify.Webhook.URL) {
		a.redact.add(s)
	}
	a.logger = newLogger(a.stderr, cfg.Log.Format, cfg.Log.Level, a.redact)
	for _, name := range unknown {
		a.logger.Warn("unknown environment variable ignored", slog.String("name", name))
	}
	return nil
}

// noArgs is a cobra argument check whose error is a usage error (exit 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q (see %s --help)", cmd.CommandPath(), args, cmd.CommandPath())
	}
	return nil
}

// subcommandRequired is the RunE of a command that only groups others.
func subcommandRequired(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %s (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return usagef("%s needs a subcommand (see %s --help)", cmd.CommandPath(), cmd.CommandPath())
}

// isTerminal reports whether r is a terminal, for prompts. /dev/null is
// a character device but not a terminal, hence the ioctl check.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
