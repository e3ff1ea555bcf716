package runner

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	wassoriver "github.com/wasso/scheduler/river"
)

// TestConfigDefaults: the defaults are the library's wherever the library
// has one, and every tag of Config means something: each flag tag names a
// flag a command declares, each check holds for the default.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()

	// With no input, the runner builds the library's default config.
	got, want := defaultConfig.RiverConfig(), wassoriver.Config{}.WithDefaults()
	for _, k := range configKeys {
		for path := range strings.SplitSeq(k.tag("river"), ",") {
			if path == "" {
				continue
			}
			name, _ := riverField(path)
			if name == "Queues" || name == "RescueStuckJobsAfter" {
				continue // zero: the library derives them
			}
			gv := reflect.ValueOf(got).FieldByIndex(fieldIndex(reflect.TypeFor[wassoriver.Config](), name)).Interface()
			wv := reflect.ValueOf(want).FieldByIndex(fieldIndex(reflect.TypeFor[wassoriver.Config](), name)).Interface()
			require.Equal(t, wv, gv, "default of %s (%s)", k.name, name)
		}
	}
	require.Equal(t, attendance.WebhookTimeoutDefault, defaultConfig.Notify.Webhook.Timeout)
	require.Equal(t, "sweep.parallel", defaultConfig.keyOfRiverField("SweepParallel"))

	// Every flag tag is a flag of some command.
	a := &app{redact: &redactor{}}
	flags := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCmd())
	for _, k := range configKeys {
		if name := k.tag("flag"); name != "" {
			require.True(t, flags[name], "key %s names flag --%s, which no command declares", k.name, name)
		}
		cfg := *defaultConfig
		require.NoError(t, checkValue(k, reflect.ValueOf(&cfg).Elem().FieldByIndex(k.index)), k.name)
	}
}
