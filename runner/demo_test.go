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
		// The human lines, in order: what was set up, each settlement and
		// its notice, the summary.
		require.Regexp(t, `(?s)No database configured: starting a private Postgres cluster.*`+
			`Postgres is up on .*Migrated: .*Seeded "Wasso demo club": 3 members, 2 events.*`+
			`River UI: http://127\.0\.0\.1:\d+/riverui/.*Waiting for deadlines \(Ctrl-C to stop\)`, res.stdout)
		require.Equal(t, 2, strings.Count(res.stdout, "after its deadline:"), res.stdout)
		require.Regexp(t, `(?s)settled "Morning practice" .*\n\S+  notice  "Morning practice" +absent notice delivered to \d+ members?\n`, res.stdout)
		require.Equal(t, 2, strings.Count(res.stdout, "absent notice delivered to"), res.stdout)
		require.Regexp(t, `Every demo event is settled: 2 events, \d+ members? marked absent, settled a median \d+\.\ds and at most \d+\.\ds after the deadline\.\n`+
			`Stopping \(--exit-when-settled\)\.\.\.\nStopped\.\nRemoved the Postgres cluster\.\n$`, res.stdout)
		// And no structured logs but warnings and errors.
		requireNoInfoLogs(t, res)
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
		require.Regexp(t, `No demo event was settled \(of 4\)\.\nStopped\.\nRemoved the Postgres cluster\.\n$`, p.stdout.String())
		requireNoInfoLogs(t, result{stdout: p.stdout.String(), stderr: p.stderr.String()})
		m := demoDataDir.FindStringSubmatch(p.stdout.String())
		require.NotNil(t, m)
		_, err := os.Stat(m[1])
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("ConfiguredScratchDatabase", func(t *testing.T) {
		t.Parallel()
		reserveConns(t, 10) // the demo's runner and its own queries

		db := newDB(t, wassotest.Options{Bare: true})
		res := runCLI(t, cliOpts{}, args([]string{"demo", "--exit-when-settled", "--events", "1", "--spacing", "1s", "--http-addr", "127.0.0.1:0"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.NotContains(t, res.stdout, "private Postgres")
		require.Contains(t, res.stdout, "Every demo event is settled: 1 event,")
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM wasso_settlement`).Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("VerboseShowsTheLogs", func(t *testing.T) {
		t.Parallel()

		db := newDB(t, wassotest.Options{Bare: true})
		res := runCLI(t, cliOpts{}, args([]string{"demo", "--verbose", "--exit-when-settled", "--events", "1", "--spacing", "1s", "--http-addr", "127.0.0.1:0"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stderr, `level=INFO msg="wasso-runner started"`)
		require.Contains(t, res.stderr, `level=INFO msg="River client started"`)
		require.Contains(t, res.stderr, `level=INFO msg="absent notice delivered"`)
		// The human lines are there all the same, on stdout only.
		require.Contains(t, res.stdout, "absent notice delivered to")
		require.Contains(t, res.stdout, "Every demo event is settled: 1 event,")
		require.NotContains(t, res.stdout, "level=")
	})

	t.Run("WarningsShowWithoutVerbose", func(t *testing.T) {
		t.Parallel()

		// A runner that does not work the default queue warns; the demo
		// still settles through the exact-deadline queue.
		db := newDB(t, wassotest.Options{Bare: true})
		res := runCLI(t, cliOpts{env: []string{"WASSO_RUN_QUEUES=other=1"}}, args([]string{"demo", "--exit-when-settled", "--events", "1", "--spacing", "1s", "--http-addr", "127.0.0.1:0"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stderr, `level=WARN msg="this runner does not work the default queue`)
		requireNoInfoLogs(t, res)
	})

	t.Run("ExplicitLogLevelWins", func(t *testing.T) {
		t.Parallel()

		db := newDB(t, wassotest.Options{Bare: true})
		res := runCLI(t, cliOpts{}, args([]string{"demo", "--log-level", "info", "--exit-when-settled", "--events", "1", "--spacing", "1s", "--http-addr", "127.0.0.1:0"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stderr, `level=INFO msg="wasso-runner started"`)
	})

	t.Run("RefusesADatabaseWithEvents", func(t *testing.T) {
		t.Parallel()

		db := newDB(t, wassotest.Options{})
		dueClub(t, db, 2)
		res := runCLI(t, cliOpts{}, args([]string{"demo"}, dbArgs(db))...)
		require.Equal(t, 2, res.code, res.String())
		require.Contains(t, res.stderr, "demo writes demo rows and needs a scratch database, but this one has 1 events")
	})

	t.Run("RefusesAnOpenUnauthenticatedUI", func(t *testing.T) {
		t.Parallel()

		db := newDB(t, wassotest.Options{Bare: true})
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

// requireNoInfoLogs checks that the demo printed no log line below warn,
// in text or JSON, on either stream.
func requireNoInfoLogs(t *testing.T, res result) {
	t.Helper()
	for _, level := range []string{"DEBUG", "INFO"} {
		for _, s := range []string{res.stdout, res.stderr} {
			require.NotContains(t, s, "level="+level, res.String())
			require.NotContains(t, s, `"level":"`+level+`"`, res.String())
		}
	}
}
