package pgtemp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// helperEnv makes the test binary act as a process that starts a cluster and
// then waits to be killed (see TestWatchdogCleansUpAfterKill).
const helperEnv = "PGTEMP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		runHelper()
		return
	}
	os.Exit(m.Run())
}

// runHelper starts a cluster, prints "DIR PORT" and blocks until killed.
func runHelper() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%s %d\n", c.Dir(), c.Port())
	select {}
}

// requireBinaries skips the test only when there are no Postgres binaries.
func requireBinaries(t *testing.T) {
	t.Helper()
	_, err := FindBinaries()
	if errors.Is(err, ErrNoBinaries) {
		t.Skip(err)
	}
	require.NoError(t, err)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func requirePortClosed(t *testing.T, port int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err == nil {
		_ = conn.Close()
	}
	require.Error(t, err, "port %d still answers", port)
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	c, err := Start(ctx, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })

	require.NotZero(t, c.Port())
	require.DirExists(t, c.Dir())
	require.Equal(t,
		fmt.Sprintf("postgres://postgres@127.0.0.1:%d/wasso?sslmode=disable", c.Port()),
		c.URL(Database))

	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
	require.NoError(t, conn.Close(ctx))

	conn, err = pgx.Connect(ctx, c.URL(Database))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL)")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 2, n)
	var db string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	require.Equal(t, Database, db)
	require.NoError(t, conn.Close(ctx))

	dir, port := c.Dir(), c.Port()
	require.NoError(t, c.Stop())
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist)
	requirePortClosed(t, port)

	require.NoError(t, c.Stop(), "second Stop")
}

func TestTwoClustersInParallel(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	a, err := Start(ctx, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop() })
	b, err := Start(ctx, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Stop() })

	require.NotEqual(t, a.Port(), b.Port())
	require.NotEqual(t, a.Dir(), b.Dir())
	for _, c := range []*Cluster{a, b} {
		conn, err := pgx.Connect(ctx, c.URL(Database))
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		require.NoError(t, conn.Close(ctx))
	}
	require.NoError(t, a.Stop())
	require.NoError(t, b.Stop())
}

// TestWatchdogCleansUpAfterKill starts a cluster in a child process, kills
// that process with SIGKILL and expects the watchdog to stop the server and
// remove the directory.
func TestWatchdogCleansUpAfterKill(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = t.Output()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "helper did not report its cluster")
	dir, portStr, ok := strings.Cut(strings.TrimSpace(line), " ")
	require.True(t, ok, "helper output %q", line)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	require.DirExists(t, dir)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	require.Eventually(t, func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, fs.ErrNotExist)
	}, 30*time.Second, 100*time.Millisecond, "watchdog did not remove %s", dir)
	requirePortClosed(t, port)
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	require.Equal(t, -1, compareVersions("9.6", "10"))
	require.Equal(t, 1, compareVersions("16", "15"))
	require.Equal(t, 0, compareVersions("15", "15"))
	require.Equal(t, -1, compareVersions("beta", "9"))
}

// TestStopServerStartServer: a restart keeps the port, the data directory
// and every committed row, and a connection made before it is gone.
func TestStopServerStartServer(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	c, err := Start(ctx, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })

	conn, err := pgx.Connect(ctx, c.URL(Database))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO t SELECT generate_series(1, 1000)")
	require.NoError(t, err)

	dir, port := c.Dir(), c.Port()
	require.NoError(t, c.StopServer(ctx))
	requirePortClosed(t, port)
	require.DirExists(t, dir)
	require.Error(t, conn.Ping(ctx), "a connection from before the stop")

	require.NoError(t, c.StartServer(ctx))
	require.Equal(t, port, c.Port())
	conn, err = pgx.Connect(ctx, c.URL(Database))
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 1000, n, "rows committed before the restart")
	require.NoError(t, conn.Close(ctx))

	require.NoError(t, c.Stop())
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist)
	requirePortClosed(t, port)
}

// TestStandbyFailover: a standby made from a primary has the primary's
// commits once caught up, refuses writes, and after the primary is killed
// and it is promoted, accepts them. What the primary committed after the
// standby stopped receiving is not there: the loss asynchronous
// replication allows.
func TestStandbyFailover(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	primary, err := Start(ctx, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, primary.Stop()) })
	exec := func(url, sql string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	count := func(url string) int {
		var n int
		require.NoError(t, queryRow(ctx, url, `SELECT count(*) FROM t`, &n))
		return n
	}
	require.NoError(t, exec(primary.URL(Database), `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`))

	standby, err := StartStandby(ctx, primary, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, standby.Stop()) })
	require.NotEqual(t, primary.Port(), standby.Port())
	require.NoError(t, exec(primary.URL(Database), `INSERT INTO t VALUES (2)`))
	require.NoError(t, standby.CatchUp(ctx, primary))
	require.Equal(t, 2, count(standby.URL(Database)), "rows on the caught-up standby")
	err = exec(standby.URL(Database), `INSERT INTO t VALUES (3)`)
	require.ErrorContains(t, err, "read-only transaction", "a write on the standby")

	require.NoError(t, standby.StopReceiving(ctx))
	require.NoError(t, exec(primary.URL(Database), `INSERT INTO t VALUES (4)`))
	require.Equal(t, 3, count(primary.URL(Database)))

	port := primary.Port()
	require.NoError(t, primary.Kill(ctx))
	requirePortClosed(t, port)
	require.NoError(t, standby.Promote(ctx))
	require.NoError(t, exec(standby.URL(Database), `INSERT INTO t VALUES (5)`), "a write on the promoted standby")
	var ids []int
	conn, err := pgx.Connect(ctx, standby.URL(Database))
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM t ORDER BY id`)
	require.NoError(t, err)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 5}, ids, "rows after the failover: the commit the standby never received is lost")
}
