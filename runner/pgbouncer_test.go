package runner_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

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
