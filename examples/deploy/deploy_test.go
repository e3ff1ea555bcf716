// Package deploy holds deployment files for wasso-runner; its test checks
// that they agree with the runner's defaults.
package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/runner"
)

func TestSystemdUnit(t *testing.T) {
	t.Parallel()

	unit, err := os.ReadFile("wasso-runner.service")
	require.NoError(t, err)
	for _, line := range []string{"Restart=on-failure", "KillSignal=SIGTERM", "RestartPreventExitStatus=2", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		require.Contains(t, string(unit), "\n"+line+"\n")
	}
	stop := regexp.MustCompile(`\nTimeoutStopSec=(\d+)s\n`).FindStringSubmatch(string(unit))
	require.NotNil(t, stop)
	timeout, err := time.ParseDuration(stop[1] + "s")
	require.NoError(t, err)
	require.Greater(t, timeout, runner.ShutdownTimeoutDefault, "systemd must wait longer than the runner's shutdown timeout")

	if path, err := exec.LookPath("systemd-analyze"); err == nil {
		out, _ := exec.Command(path, "verify", "wasso-runner.service").CombinedOutput()
		// The binary is not installed here; anything else is a unit error.
		for _, line := range regexp.MustCompile(`(?m)^.+$`).FindAllString(string(out), -1) {
			require.Regexp(t, `Command /usr/local/bin/wasso-runner is not executable`, line)
		}
	}
}

func TestSupervisorProgram(t *testing.T) {
	t.Parallel()

	conf, err := os.ReadFile("supervisor-wasso-runner.conf")
	require.NoError(t, err)
	stop := regexp.MustCompile(`\nstopwaitsecs=(\d+)\n`).FindStringSubmatch(string(conf))
	require.NotNil(t, stop)
	timeout, err := time.ParseDuration(stop[1] + "s")
	require.NoError(t, err)
	require.Greater(t, timeout, runner.ShutdownTimeoutDefault)
	require.Contains(t, string(conf), "\nstopsignal=TERM\n")
}
