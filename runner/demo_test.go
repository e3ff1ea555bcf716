package runner_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/pgtemp"
	"github.com/wasso/scheduler/internal/wassotest"
)

// demoDataDir is the private cluster's directory, from the demo's output.
var demoDataDir = regexp.MustCompile(`\(data in (\S+)\)`)

func TestDemo(t *testing.T) {
	t.Parallel()

	t.Run("PrivateClusterSettlesEveryEventAndCleansUp", func(t *testing.T) {
		t.Parallel()

		if _, err := pgtemp.FindBinaries(); err != nil {
			t.Skipf("no Postgres binaries for a private cluster: %v", err)
		}
		res := runCLI(t, cliOpts{}, "demo", "--exit-when-settled", "--events", "2", "--members", "3", "--spacing", "2s", "--http-addr", "127.0.0.1:0", "--log-format", "json")
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stdout, "No database configured: starting a private Postgres cluster")
		require.Regexp(t, `River UI: http://127\.0\.0\.1:\d+/riverui/`, res.stdout)
		require.Equal(t, 2, strings.Count(res.stdout, "after its deadline:"), res.stdout)
		require.Contains(t, res.stdout, "Every demo event is settled.")
		m := demoDataDir.FindStringSubmatch(res.stdout)
		require.NotNil(t, m, res.stdout)
		_, err := os.Stat(m[1])
		require.ErrorIs(t, err, os.ErrNotExist, "the cluster's directory is removed")
	})

	t.Run("InterruptStopsAndCleansUp", func(t *testing.T) {
		t.Parallel()

		if _, err := pgtemp.FindBinaries(); err != nil {
			t.Skipf("no Postgres binaries for a private cluster: %v", err)
		}
		p := startProc(t, cliOpts{}, "demo", "--spacing", "1h", "--http-addr", "127.0.0.1:0", "--log-format", "json")
		require.Eventually(t, func() bool {
			return strings.Contains(p.stdout.String(), "Waiting for deadlines")
		}, time.Minute, 50*time.Millisecond, p.stdout.String())
		p.signal(t, syscall.SIGINT)
		require.Equal(t, 0, p.wait(t, time.Minute), p.stderr.String())
		require.Contains(t, p.stdout.String(), "Stopped.")
		m := demoDataDir.FindStringSubmatch(p.stdout.String())
		require.NotNil(t, m)
		_, err := os.Stat(m[1])
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("ConfiguredScratchDatabase", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		res := runCLI(t, cliOpts{}, args([]string{"demo", "--exit-when-settled", "--events", "1", "--spacing", "1s", "--http-addr", "127.0.0.1:0"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.NotContains(t, res.stdout, "private Postgres")
		require.Contains(t, res.stdout, "Every demo event is settled.")
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM wasso_settlement`).Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("RefusesADatabaseWithEvents", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		dueClub(t, db, 2)
		res := runCLI(t, cliOpts{}, args([]string{"demo"}, dbArgs(db))...)
		require.Equal(t, 2, res.code, res.String())
		require.Contains(t, res.stderr, "demo writes demo rows and needs a scratch database, but this one has 1 events")
	})

	t.Run("RefusesAnOpenUnauthenticatedUI", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		res := runCLI(t, cliOpts{}, args([]string{"demo", "--http-addr", "0.0.0.0:0"}, dbArgs(db))...)
		require.Equal(t, 2, res.code, res.String())
		require.Contains(t, res.stderr, "http.addr")
	})

	t.Run("BadFlags", func(t *testing.T) {
		t.Parallel()

		res := runCLI(t, cliOpts{}, "demo", "--events", "0")
		require.Equal(t, 2, res.code, res.String())
		require.Contains(t, res.stderr, "--events 0: must be between 1 and 1000")
	})
}
