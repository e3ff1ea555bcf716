package runner

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/wasso/scheduler/runner.Version=v1.2.3". Without
// it, the module version or VCS revision recorded by the Go toolchain is
// used.
var Version = ""

func versionString() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return "devel"
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if modified == "true" {
		revision += "-dirty"
	}
	return "devel-" + revision
}

// moduleVersion is the version of a dependency compiled in.
func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range info.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

func (a *app) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:         "version",
		Short:       "Print the version",
		Args:        noArgs,
		Annotations: map[string]string{annotationNoConfig: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{
				"version":  versionString(),
				"go":       runtime.Version(),
				"river":    moduleVersion("github.com/riverqueue/river"),
				"riverui":  moduleVersion("riverqueue.com/riverui"),
				"platform": runtime.GOOS + "/" + runtime.GOARCH,
			}
			if asJSON {
				return printJSON(a.stdout, v)
			}
			fmt.Fprintf(a.stdout, "wasso-runner %s (river %s, riverui %s, %s, %s)\n", v["version"], v["river"], v["riverui"], v["go"], v["platform"])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
