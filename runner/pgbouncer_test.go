package runner_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

// startPgBouncer runs Debian's PgBouncer in transaction pooling mode in
// front of db's server and returns a URL through it. PgBouncer refuses the
// search_path startup parameter, so its connect_query sets db's schema on
// every server connection it opens. It is stopped when the test ends.
func startPgBouncer(t *testing.T, db *wassotest.DB) string {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
			if _, statErr := os.Stat(p); statErr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("pgbouncer not found: install it (apt-get install -y pgbouncer) to run the connection pooler tests")
	}
	server, err := pgx.ParseConfig(db.URL)
	require.NoError(t, err)
	port := freePort(t)

	// PgBouncer will not run as root: it then runs as postgres, which
	// must read its configuration and write its log.
	dir, err := os.MkdirTemp("", "pgbouncer-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	conn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", server.Host, server.Port, server.Database, server.User)
	if server.Password != "" {
		conn += " password=" + server.Password
	}
	ini := fmt.Sprintf(`[databases]
wasso = %s connect_query='SET search_path TO %s'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 8
max_client_conn = 200
logfile = %s
pidfile = %s
`, conn, db.Schema, port, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	require.NoError(t, os.WriteFile(iniPath, []byte(ini), 0o644))

	args := []string{iniPath}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skip("pgbouncer will not run as root and there is no postgres user to run it as")
		}
		args = []string{"-u", "postgres", iniPath}
	}
	cmd := exec.Command(bin, args...)
	out := &wassotest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	url := fmt.Sprintf("postgres://%s@127.0.0.1:%d/wasso?sslmode=disable", server.User, port)
	wassotest.WaitFor(t, 30*time.Second, "pgbouncer to accept connections", func() bool {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Fatalf("pgbouncer exited: %s%s", out.String(), log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, url+"&default_query_exec_mode=exec")
		if err != nil {
			return false
		}
		defer c.Close(ctx)
		var schema string
		return c.QueryRow(ctx, "SELECT current_schema()", pgx.QueryExecModeExec).Scan(&schema) == nil && schema == db.Schema
	})
	return url
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
