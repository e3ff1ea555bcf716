package runner

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
)

// configValues returns the resolved value of every key, as printed by the
// config command: secrets are redacted, durations in Go notation.
func (c *Config) configValues() map[string]any {
	queues := "(default queue with run.concurrency workers)"
	if len(c.Run.Queues) > 0 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(c.Run.Queues)) {
			parts = append(parts, fmt.Sprintf("%s=%d", name, c.Run.Queues[name]))
		}
		queues = strings.Join(parts, ",")
	}
	var tasks []string
	for _, name := range slices.Sorted(maps.Keys(c.Schedules.CeleryTasks)) {
		tasks = append(tasks, name+"="+c.Schedules.CeleryTasks[name])
	}
	return map[string]any{
		"database_url":                 redactURL(c.DatabaseURL),
		"schema":                       c.Schema,
		"time_zone":                    c.TimeZone.String(),
		"log.format":                   c.Log.Format,
		"log.level":                    c.Log.Level,
		"database.connect_timeout":     c.Database.ConnectTimeout.String(),
		"database.max_conns":           c.Database.MaxConns,
		"run.concurrency":              c.Run.Concurrency,
		"run.queues":                   queues,
		"run.periodic":                 c.Run.Periodic,
		"run.shutdown_timeout":         c.Run.ShutdownTimeout.String(),
		"run.job_timeout":              c.Run.JobTimeout.String(),
		"run.rescue_after":             c.RiverConfig().WithDefaults().RescueStuckJobsAfter.String(),
		"http.enabled":                 c.HTTP.Enabled,
		"http.addr":                    c.HTTP.Addr,
		"http.username":                c.HTTP.Username,
		"http.password":                redactSecret(c.HTTP.Password),
		"http.read_only":               c.HTTP.ReadOnly,
		"sweep.interval":               c.Sweep.Interval.String(),
		"sweep.timeout":                c.Sweep.Timeout.String(),
		"sweep.lookback":               c.Sweep.Lookback.String(),
		"sweep.parallel":               c.Sweep.Parallel,
		"deadlines.enabled":            c.Deadlines.Enabled,
		"deadlines.concurrency":        c.Deadlines.Concurrency,
		"deadlines.poll_interval":      c.Deadlines.PollInterval.String(),
		"deadlines.discovery_interval": c.Deadlines.DiscoveryInterval.String(),
		"deadlines.discovery_horizon":  c.Deadlines.DiscoveryHorizon.String(),
		"deadlines.burst_limit":        c.Deadlines.BurstLimit,
		"notify.enabled":               c.Notify.Enabled,
		"notify.timeout":               c.Notify.Timeout.String(),
		"notify.webhook.url":           redactWebhookURL(c.Notify.WebhookURL),
		"notify.webhook.secret":        redactSecret(c.Notify.WebhookSecret),
		"notify.webhook.timeout":       c.Notify.WebhookTimeout.String(),
		"retention.completed":          c.Retention.Completed.String(),
		"retention.cancelled":          c.Retention.Cancelled.String(),
		"retention.discarded":          c.Retention.Discarded.String(),
		"schedules.time_zone":          c.Schedules.TimeZone,
		"schedules.max_catch_up":       c.Schedules.MaxCatchUp,
		"schedules.poll_interval":      c.Schedules.PollInterval.String(),
		"schedules.celery_tasks":       strings.Join(tasks, ","),
	}
}

func redactSecret(s string) string {
	if s == "" {
		return ""
	}
	return "xxxxx"
}

// redactURL masks the password of a URL or keyword/value connection
// string.
func redactURL(s string) string {
	r := &redactor{}
	return r.redact(s)
}

// redactWebhookURL prints the webhook URL as the notifier's errors name
// it, without user info, query or fragment, where tokens live; "?xxxxx"
// says a query was there.
func redactWebhookURL(s string) string {
	r := attendance.RedactWebhookURL(s)
	if u, err := url.Parse(s); err == nil && (u.RawQuery != "" || u.ForceQuery) {
		r += "?xxxxx"
	}
	return r
}

func (a *app) configCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the resolved configuration and where each value came from (secrets masked)",
		Long: `config prints every configuration key with its resolved value and its source
(flag, environment variable, config file or default), after checking it as run
would. Passwords are masked. Flags of other commands (run's --concurrency, say)
are not read here: use the environment or the config file to try them.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			values := a.cfg.configValues()
			if asJSON {
				out := map[string]any{"file": a.cfg.File, "keys": map[string]any{}}
				for _, s := range keySpecs {
					out["keys"].(map[string]any)[s.name] = map[string]any{"value": values[s.name], "source": a.cfg.Source(s.name)}
				}
				return printJSON(a.stdout, out)
			}
			file := a.cfg.File
			if file == "" {
				file = "(none)"
			}
			fmt.Fprintf(a.stdout, "config file: %s\n", file)
			t := newTable(a.stdout, "KEY", "VALUE", "SOURCE")
			for _, s := range keySpecs {
				v := fmt.Sprint(values[s.name])
				if v == "" {
					v = `""`
				}
				t.row(s.name, v, a.cfg.Source(s.name))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
