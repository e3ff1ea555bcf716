package runner_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/pgbouncer"
	"github.com/wasso/scheduler/internal/wassotest"
)

// startPgBouncer runs PgBouncer in transaction pooling mode in front of
// db's server, in db's schema, until the test ends, and returns its URL.
func startPgBouncer(t *testing.T, db *wassotest.DB) string {
	t.Helper()
	b, err := pgbouncer.Start(context.Background(), db.URL, db.Schema)
	if errors.Is(err, pgbouncer.ErrNotInstalled) {
		t.Skip(err.Error() + ", to run the connection pooler tests")
	}
	require.NoError(t, err)
	t.Cleanup(b.Stop)
	return b.URL
}

// TestPgBouncerTransactionMode runs the runner behind a real PgBouncer in
// transaction pooling mode with its plain URL: setup and run work (no
// prepared statement outlives its transaction), and both say that
// notifications are lost and name database.listen_url, the gauge saying
// it too; with database.listen_url set to a direct connection,
// notifications arrive, and events are settled either way.
func TestPgBouncerTransactionMode(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	bouncer := startPgBouncer(t, db)
	viaBouncer := []string{"--database-url", bouncer, "--schema", db.Schema}
	direct := cliOpts{env: []string{"WASSO_DATABASE_LISTEN_URL=" + db.URL}}

	// migrate's lock is a transaction's, so that a second migrate through
	// the pooler is not held up by a session lock left on a server
	// connection.
	for range 2 {
		res := runCLI(t, cliOpts{}, args([]string{"migrate", "up"}, viaBouncer)...)
		require.Equal(t, 0, res.code, res)
	}
	res := runCLI(t, cliOpts{}, args([]string{"setup"}, viaBouncer)...)
	require.Equal(t, 0, res.code, res)
	require.Contains(t, res.stdout, "notifications: not delivered", res)
	require.Contains(t, res.stdout, "database.listen_url", res)

	res = runCLI(t, direct, args([]string{"setup"}, viaBouncer)...)
	require.Equal(t, 0, res.code, res)
	require.Contains(t, res.stdout, "notifications: delivered", res)

	for _, tc := range []struct {
		name      string
		opts      cliOpts
		delivered float64
	}{
		{"without listen_url", cliOpts{}, 0},
		{"with listen_url", direct, 1},
	} {
		club, eventID := dueClub(t, db, 3)
		p := startRun(t, tc.opts, args([]string{"run", "--log-format", "json", "--http-addr", "127.0.0.1:0", "--concurrency", "2"}, viaBouncer)...)
		warned := func() bool {
			for _, line := range p.logLines() {
				if strings.HasPrefix(fmt.Sprint(line["msg"]), "notifications do not arrive") && line["key"] == "database.listen_url" {
					return true
				}
			}
			return false
		}
		var gauge float64
		waitFor(t, p, time.Minute, tc.name+": the notifications gauge", func() bool {
			code, body, err := tryHTTP("GET", p.baseURL(t)+"/metrics", nil, "", "")
			gauge = metricValue(body, "wasso_runner_notifications_delivered")
			return err == nil && code == http.StatusOK && gauge >= 0
		})
		require.Equal(t, tc.delivered, gauge, tc.name)
		require.Equal(t, tc.delivered == 0, warned(), "%s: a warning naming database.listen_url", tc.name)
		waitFor(t, p, 2*time.Minute, tc.name+": the due event settled", func() bool {
			return countNoFail(db, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, eventID) == len(club.MappingIDs)
		})
		p.signal(t, syscall.SIGTERM)
		require.Equal(t, 0, p.wait(t, time.Minute), tc.name)
	}
}

// TestReadOnlyDatabase: a database_url that reaches only a read-only
// server (a standby, here a role whose transactions are read-only) gets a
// one-line error naming the cause: with target_session_attrs=read-write,
// pgx refuses every host and the command exits 2 before doing anything;
// without it, the first write fails and the error says what to do.
func TestReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	server, err := pgx.ParseConfig(db.URL)
	require.NoError(t, err)
	if server.Password != "" {
		t.Skip("the test server needs passwords; the read-only role has none")
	}
	role := "ro_" + db.Schema
	admin := wassotest.AdminPool(t)
	_, err = admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN SUPERUSER`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
		_, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
	})
	_, err = admin.Exec(ctx, `ALTER ROLE `+role+` SET default_transaction_read_only = on`)
	require.NoError(t, err)
	readOnly := strings.Replace(db.URL, "postgres://"+server.User+"@", "postgres://"+role+"@", 1)
	require.NotEqual(t, db.URL, readOnly)

	res := runCLI(t, cliOpts{}, "setup", "--database-url", readOnly+"&target_session_attrs=read-write", "--schema", db.Schema)
	require.Equal(t, 2, res.code, res)
	msg := oneLine(t, res.stderr)
	require.Contains(t, msg, "database is read-only")
	require.Contains(t, msg, "list the primary among its hosts")

	res = runCLI(t, cliOpts{}, "setup", "--database-url", readOnly, "--schema", db.Schema)
	require.Equal(t, 1, res.code, res)
	msg = oneLine(t, res.stderr)
	require.Contains(t, msg, "read-only transaction")
	require.Contains(t, msg, "database_url reaches a read-only server")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_schedule`), "nothing written")
}

// TestListenURLUnreachable: a database.listen_url that does not answer is
// a one-line configuration error naming the key, without its password,
// and nothing starts.
func TestListenURLUnreachable(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	opts := cliOpts{env: []string{fmt.Sprintf("WASSO_DATABASE_LISTEN_URL=postgres://wasso:s3cret@127.0.0.1:%d/wasso", port)}}
	for _, cmd := range [][]string{{"setup"}, {"run", "--no-http"}} {
		res := runCLI(t, opts, args(cmd, dbArgs(db))...)
		require.Equal(t, 2, res.code, res)
		msg := oneLine(t, res.stderr)
		require.Contains(t, msg, "database.listen_url: database unreachable")
		require.NotContains(t, msg, "s3cret")
	}
}

// TestPoolerModes: behind PgBouncer in statement pooling mode, which
// refuses transactions, migrate and setup fail with a one-line error
// naming the mode and what to use instead, and write nothing; in session
// mode they work, and setup and run say once that each runner connection
// holds a server connection, naming database.max_conns.
func TestPoolerModes(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	start := func(mode string) []string {
		b, err := pgbouncer.StartMode(context.Background(), db.URL, db.Schema, mode)
		if errors.Is(err, pgbouncer.ErrNotInstalled) {
			t.Skip(err.Error() + ", to run the connection pooler tests")
		}
		require.NoError(t, err)
		t.Cleanup(b.Stop)
		return []string{"--database-url", b.URL, "--schema", db.Schema}
	}

	statement := start("statement")
	for _, cmd := range [][]string{{"migrate", "up"}, {"setup"}} {
		res := runCLI(t, cliOpts{}, args(cmd, statement)...)
		require.Equal(t, 1, res.code, res)
		msg := oneLine(t, res.stderr)
		require.Contains(t, msg, "statement pooling mode", res)
		require.Contains(t, msg, "use pool_mode = transaction", res)
	}
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_schedule`), "nothing written")

	session := start("session")
	res := runCLI(t, cliOpts{}, args([]string{"setup"}, session)...)
	require.Equal(t, 0, res.code, res)
	require.Contains(t, res.stdout, "notifications: delivered", res)
	require.Contains(t, res.stdout, "pooler: database_url goes through a connection pooler in session mode", res)
	require.Contains(t, res.stdout, "database.max_conns", res)

	direct := runCLI(t, cliOpts{}, args([]string{"setup"}, dbArgs(db))...)
	require.Equal(t, 0, direct.code, direct)
	require.NotContains(t, direct.stdout, "pooler:", "a direct connection is not a pooler")

	p := startRun(t, cliOpts{}, args([]string{"run", "--log-format", "json", "--http-addr", "127.0.0.1:0", "--concurrency", "2"}, session)...)
	p.waitLog(t, "wasso-runner started", time.Minute)
	var warnings int
	for _, line := range p.logLines() {
		if strings.HasPrefix(fmt.Sprint(line["msg"]), "database_url goes through a connection pooler in session mode") {
			warnings++
			require.Equal(t, "WARN", line["level"])
			require.Equal(t, "database.max_conns", line["key"])
		}
	}
	require.Equal(t, 1, warnings, "session pooler warnings logged by run")
	stopRunner(t, p)
}
