package runner_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/runner"
)

// TestRunProcs: the binary's run works with runner.RunProcs processors,
// unless the GOMAXPROCS environment variable sets another number, and says
// which in its start line.
func TestRunProcs(t *testing.T) {
	t.Parallel()

	db := newDB(t, wassotest.Options{})
	for _, tc := range []struct {
		env  []string
		want float64
	}{
		{nil, runner.RunProcs},
		{[]string{"GOMAXPROCS=3"}, 3},
	} {
		p := startRun(t, cliOpts{env: tc.env}, args([]string{"run", "--log-format", "json", "--no-http", "--no-periodic", "--no-deadlines"}, dbArgs(db))...)
		line := p.waitLog(t, "wasso-runner started", 60*time.Second)
		require.Equal(t, tc.want, line["gomaxprocs"], "env %v", tc.env)
		p.signal(t, syscall.SIGTERM)
		require.Equal(t, 0, p.wait(t, 30*time.Second))
	}
}
