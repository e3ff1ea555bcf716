// Command wasso-runner works and operates the Wasso scheduler's River
// jobs. Everything but signal wiring lives in package runner, so that
// tests and the demo can run the same code.
package main

import (
	"context"
	"os"

	// The zone database is embedded so that time_zone works on minimal
	// images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/wasso/scheduler/runner"
)

func main() {
	ctx, hardStop, stop := runner.NotifySignals(context.Background())
	code := runner.Main(ctx, os.Args[1:], runner.Env{
		Stdin:    os.Stdin,
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		HardStop: hardStop,
		Process:  true,
	})
	stop()
	os.Exit(code)
}
