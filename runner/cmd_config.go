package runner

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
)

// configValues returns the resolved value of every key, as printed by the
// config command: secrets masked, durations in Go notation, mappings as
// the "a=1,b=2" of a flag.
func (c *Config) configValues() map[string]any {
	v := reflect.ValueOf(c).Elem()
	out := make(map[string]any, len(configKeys))
	for _, k := range configKeys {
		value := v.FieldByIndex(k.index).Interface()
		switch x := value.(type) {
		case time.Duration, *time.Location:
			value = fmt.Sprint(x)
		case map[string]int, map[string]string:
			m := reflect.ValueOf(x)
			var parts []string
			for _, name := range m.MapKeys() {
				parts = append(parts, fmt.Sprintf("%s=%v", name, m.MapIndex(name)))
			}
			slices.Sort(parts)
			value = strings.Join(parts, ",")
		}
		switch k.tag("secret") {
		case "url":
			value = redactURL(value.(string))
		case "webhook":
			value = redactWebhookURL(value.(string))
		case "true":
			value = redactSecret(value.(string))
		}
		out[k.name] = value
	}
	if len(c.Run.Queues) == 0 {
		out["run.queues"] = "(default queue with run.concurrency workers)"
	}
	// Zero derives it from the job timeouts: print what that gives.
	out["run.rescue_after"] = c.RiverConfig().WithDefaults().RescueStuckJobsAfter.String()
	return out
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
				for _, k := range configKeys {
					out["keys"].(map[string]any)[k.name] = map[string]any{"value": values[k.name], "source": a.cfg.Source(k.name)}
				}
				return printJSON(a.stdout, out)
			}
			file := a.cfg.File
			if file == "" {
				file = "(none)"
			}
			fmt.Fprintf(a.stdout, "config file: %s\n", file)
			t := newTable(a.stdout, "KEY", "VALUE", "SOURCE")
			for _, k := range configKeys {
				v := fmt.Sprint(values[k.name])
				if v == "" {
					v = `""`
				}
				t.row(k.name, v, a.cfg.Source(k.name))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
