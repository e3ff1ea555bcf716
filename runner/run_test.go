package runner_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// metricValue reads one sample from a Prometheus text exposition; -1 when
// the series is absent.
func metricValue(body, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestRun: a runner works the sweep its leader enqueues, serves /healthz,
// /readyz, /metrics and River UI, and exits 0 on SIGTERM. Flags beat the
// environment for run's own keys too.
func TestRun(t *testing.T) {
	t.Parallel()
	reserveConns(t, 10) // a runner sweeping every two seconds, and the test's queries
	db := newDB(t, wassotest.Options{})
	_, eventID := dueClub(t, db, 3)
	p := startRunner(t, db, cliOpts{env: []string{"WASSO_SWEEP_INTERVAL=1h"}}, "--sweep-interval", "2s")
	started := p.waitLog(t, "wasso-runner started", time.Minute)
	require.EqualValues(t, 2*time.Second, started["sweep_interval"], "the flag beats the environment")
	base := p.baseURL(t)

	code, body := doHTTP(t, "GET", base+"/healthz", nil, "", "")
	require.Equal(t, http.StatusOK, code, body)
	// Ready: it pings the database for each request, so a moment when
	// the server has no connection left (every package's tests running
	// at once) says not ready, rightly; it is ready once the ping goes
	// through.
	require.Eventually(t, func() bool {
		code, _, err := tryHTTP("GET", base+"/readyz", nil, "", "")
		return err == nil && code == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "/readyz")

	// The event gets settled (by the sweep or by its exact-deadline job,
	// whichever comes first), and sweeps run every two seconds.
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, eventID) == 3
	}, time.Minute, 100*time.Millisecond)
	// Two sweeps, in each count: the sweep's own, River's completions
	// (recorded once River has marked the job completed, a moment after
	// the sweep returned) and the jobs table's; and a lone runner is the
	// leader, and ready (a database ping at scrape time).
	var metrics string
	require.Eventually(t, func() bool {
		code, body, err := tryHTTP("GET", base+"/metrics", nil, "", "")
		metrics = body
		return err == nil && code == http.StatusOK &&
			metricValue(metrics, `wasso_sweep_runs_total{result="completed"}`) >= 2 &&
			metricValue(metrics, `wasso_jobs_completed_total{kind="attendance.sweep"}`) >= 2 &&
			metricValue(metrics, `wasso_jobs{queue="default",state="completed"}`) >= 2 &&
			metricValue(metrics, `wasso_leader`) == 1 &&
			metricValue(metrics, `wasso_runner_ready`) == 1
	}, time.Minute, 200*time.Millisecond, "two sweeps completed, in the metrics, of a ready leader")
	require.Equal(t, 0.0, metricValue(metrics, `wasso_sweep_runs_total{result="failed"}`))
	require.Greater(t, metricValue(metrics, `wasso_sweep_last_success_timestamp_seconds`), 0.0)
	require.Contains(t, metrics, "wasso_sweep_rows_created_total")
	require.Contains(t, metrics, "go_goroutines")

	code, body = doHTTP(t, "GET", base+"/riverui/", nil, "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "<html")
	code, body = doHTTP(t, "GET", base+"/riverui/api/jobs?state=completed&limit=5", nil, "", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"kind":"attendance.sweep"`)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(base + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "/riverui/", resp.Header.Get("Location"))

	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
	p.waitLog(t, "wasso-runner stopped", time.Second)
}

// TestRunNoHTTPNoPeriodic: --no-http serves nothing, and --no-periodic
// works jobs without ever enqueueing a sweep.
func TestRunNoHTTPNoPeriodic(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	p := startRunner(t, db, cliOpts{}, "--no-http", "--no-periodic", "--sweep-interval", "1s")
	started := p.waitLog(t, "wasso-runner started", time.Minute)
	require.NotContains(t, started, "http_addr")
	require.Equal(t, false, started["periodic"])

	// It works jobs: a sweep inserted by hand completes.
	_, err := controlClient(t, db).Insert(context.Background(), attendance.SweepArgs{}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND state = 'completed'`) == 1
	}, time.Minute, 100*time.Millisecond)
	// It is the leader (the only client) yet enqueues no sweep: the jobs
	// are the test's. The deadline discovery starts with the leader's
	// periodic job enqueuer (after River's random start delay), at the
	// moment a RunOnStart sweep would be inserted, and a periodic sweep
	// would follow every second. A second job of the test's, scheduled
	// three seconds after that moment, shows the runner at work well past
	// it: once that job has completed, none but the test's two is there.
	p.waitLog(t, "deadline discovery started", time.Minute)
	_, err = controlClient(t, db).Insert(context.Background(), attendance.SweepArgs{}, &river.InsertOpts{ScheduledAt: time.Now().Add(3 * time.Second)})
	require.NoError(t, err)
	waitFor(t, p, time.Minute, "the test's scheduled sweep to complete", func() bool {
		return countNoFail(db, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND state = 'completed'`) >= 2
	})
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep'`), "sweeps: the test's two only")

	p.signal(t, syscall.SIGINT)
	require.Equal(t, 0, p.wait(t, time.Minute))
}

// TestRunBasicAuthAndReadOnly: with credentials, River UI and /metrics
// need basic auth (the probes stay open), a non-loopback address is then
// allowed, and read-only mode refuses every mutating River UI API call
// while a runner without it accepts them.
func TestRunBasicAuthAndReadOnly(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	const user, pass = "admin", "correct-horse-battery"
	creds := cliOpts{env: []string{"WASSO_HTTP_USERNAME=" + user, "WASSO_HTTP_PASSWORD=" + pass}}
	ro := startRunner(t, db, creds, "--read-only", "--http-addr", "0.0.0.0:0")
	rw := startRunner(t, db, creds)
	roPort := ro.baseURL(t)[strings.LastIndex(ro.baseURL(t), ":")+1:]
	roBase := "http://127.0.0.1:" + roPort
	rwBase := rw.baseURL(t)

	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := doHTTP(t, "GET", roBase+path, nil, "", "")
		require.Equal(t, http.StatusOK, code, "%s is open to probes: %s", path, body)
	}
	for _, path := range []string{"/metrics", "/riverui/", "/riverui/api/jobs"} {
		code, _ := doHTTP(t, "GET", roBase+path, nil, "", "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = doHTTP(t, "GET", roBase+path, nil, user, "wrong")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = doHTTP(t, "GET", roBase+path, nil, "", pass)
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, body := doHTTP(t, "GET", roBase+path, nil, user, pass)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}

	// Jobs on a queue no runner works stay available for the test.
	client := controlClient(t, db)
	var jobIDs []int64
	for i := range 3 {
		res, err := client.Insert(context.Background(), noopArgs{N: i}, &river.InsertOpts{Queue: "idle"})
		require.NoError(t, err)
		jobIDs = append(jobIDs, res.Job.ID)
	}
	idsBody := func(id int64) *strings.Reader { return strings.NewReader(fmt.Sprintf(`{"ids":["%d"]}`, id)) }
	mutations := []struct {
		method, path string
		body         func() *strings.Reader
	}{
		{"POST", "/riverui/api/jobs/cancel", func() *strings.Reader { return idsBody(jobIDs[0]) }},
		{"POST", "/riverui/api/jobs/retry", func() *strings.Reader { return idsBody(jobIDs[0]) }},
		{"POST", "/riverui/api/jobs/delete", func() *strings.Reader { return idsBody(jobIDs[1]) }},
		{"PUT", "/riverui/api/queues/default/pause", func() *strings.Reader { return strings.NewReader(`{}`) }},
		{"PUT", "/riverui/api/queues/default/resume", func() *strings.Reader { return strings.NewReader(`{}`) }},
		{"PATCH", "/riverui/api/queues/default", func() *strings.Reader { return strings.NewReader(`{"concurrency":null}`) }},
	}
	for _, m := range mutations {
		code, body := doHTTP(t, m.method, roBase+m.path, m.body(), user, pass)
		require.Equal(t, http.StatusForbidden, code, "%s %s: %s", m.method, m.path, body)
		require.Contains(t, body, "read-only")
		code, _ = doHTTP(t, m.method, roBase+m.path, m.body(), "", "")
		require.Equal(t, http.StatusUnauthorized, code, "auth comes first")
	}
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE queue = 'idle' AND state = 'available'`), "read-only changed nothing")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_queue WHERE paused_at IS NOT NULL`))

	// The same calls on the read-write runner do change things: the 403s
	// were the read-only mode, not broken requests.
	code, body := doHTTP(t, "POST", rwBase+"/riverui/api/jobs/cancel", idsBody(jobIDs[0]), user, pass)
	require.Equal(t, http.StatusOK, code, body)
	code, body = doHTTP(t, "POST", rwBase+"/riverui/api/jobs/delete", idsBody(jobIDs[1]), user, pass)
	require.Equal(t, http.StatusOK, code, body)
	code, body = doHTTP(t, "PUT", rwBase+"/riverui/api/queues/default/pause", strings.NewReader(`{}`), user, pass)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "cancelled", jobState(t, db, jobIDs[0]))
	require.Equal(t, "", jobState(t, db, jobIDs[1]))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_queue WHERE name = 'default' AND paused_at IS NOT NULL`))
	code, body = doHTTP(t, "PUT", rwBase+"/riverui/api/queues/default/resume", strings.NewReader(`{}`), user, pass)
	require.Equal(t, http.StatusOK, code, body)
}

func jobState(t *testing.T, db *wassotest.DB, id int64) string {
	t.Helper()
	var state string
	_ = db.Pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&state)
	return state
}
