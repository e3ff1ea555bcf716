package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// Fault tests: what a runner process does when it is killed, when a job
// panics and when a job outlives its timeout. They run the real binary;
// the panic needs the fault-injection build (see faultinject.go).

var (
	faultBinOnce sync.Once
	faultBin     string
	faultBinErr  error
)

// faultBinary builds, once per test process, wasso-runner with the
// wasso_faultinject tag: the release binary plus the test.panic job kind.
func faultBinary(t *testing.T) string {
	t.Helper()
	faultBinOnce.Do(func() {
		faultBin = filepath.Join(filepath.Dir(binPath), "wasso-runner-faultinject")
		out, err := exec.Command("go", "build", "-tags", "wasso_faultinject", "-o", faultBin, "./cmd/wasso-runner").CombinedOutput()
		if err != nil {
			faultBinErr = fmt.Errorf("go build -tags wasso_faultinject: %v\n%s", err, out)
		}
	})
	require.NoError(t, faultBinErr)
	return faultBin
}

// panicArgs are the args of the fault-injection build's test.panic job.
type panicArgs struct {
	Message string `json:"message"`
}

func (panicArgs) Kind() string { return "test.panic" }

// activeJob is a job of `inspect active --json`, with its runner.
type activeJob struct {
	ID     int64 `json:"id"`
	Runner struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Alive *bool  `json:"alive"`
		PID   int    `json:"pid"`
	} `json:"runner"`
}

// inspectActiveJob runs `inspect active --json` and returns the job of
// that id, or false when it is not running or the command failed. It
// never fails the test, for Eventually conditions.
func inspectActiveJob(db *wassotest.DB, id int64) (activeJob, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args([]string{"inspect", "active", "--json"}, dbArgs(db))...)
	cmd.Env = baseEnv()
	out, err := cmd.Output()
	if err != nil {
		return activeJob{}, false
	}
	var jobs []activeJob
	if json.Unmarshal(out, &jobs) != nil {
		return activeJob{}, false
	}
	for _, j := range jobs {
		if j.ID == id {
			return j, true
		}
	}
	return activeJob{}, false
}

// faultJob reads a job with client, nil when it cannot: it never fails
// the test, for Eventually conditions.
func faultJob(client *river.Client[pgx.Tx], id int64) *rivertype.JobRow {
	j, err := client.JobGet(context.Background(), id)
	if err != nil {
		return nil
	}
	return j
}

// settleJobOf is the id of the attendance.settle_event job of an event,
// or 0 while there is none.
func settleJobOf(db *wassotest.DB, eventID int64) int64 {
	var id int64
	_ = db.Pool.QueryRow(context.Background(), `SELECT id FROM river_job WHERE kind = $1 AND (args->>'event_id')::bigint = $2 ORDER BY id LIMIT 1`,
		attendance.SettleEventKind, eventID).Scan(&id)
	return id
}

// TestKillNineDuringSettlement: a runner killed with SIGKILL while it
// settles an event, blocked inside its settlement transaction by a row
// lock the test holds on one of the event's attendance rows (it has
// claimed the event, and its UPDATE may have changed the rows it reached
// before that one):
//
//   - inspect active shows the job held by the runner, alive, before the
//     kill, and lost (not alive) after it;
//   - the event it was settling is untouched once its dead backend is
//     gone (no settlement row, no ABSENT row, no notice), and the event it
//     had settled before is fully settled: nothing is ever half settled;
//   - a second runner, with no periodic sweep to cover for it, rescues the
//     job of the lost runner (its heartbeat stopped) and settles the
//     event, once: one ABSENT row per member, settle_count 1, one notice
//     per event.
//
// Both runners have run.job_timeout 20s and run.rescue_after an hour, so
// that River's own rescuer cannot be the one; the time from the kill to
// the rescue is logged.
func TestKillNineDuringSettlement(t *testing.T) {
	t.Parallel()
	const (
		members     = 2000
		jobTimeout  = 20 * time.Second
		rescueAfter = time.Hour
	)
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	opts := cliOpts{env: []string{"WASSO_RUN_JOB_TIMEOUT=" + jobTimeout.String(), "WASSO_RUN_RESCUE_AFTER=" + rescueAfter.String()}}

	var now time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now))
	club, err := seed.CreateClub(ctx, db.Pool, "Kill club", members, now.Add(-48*time.Hour))
	require.NoError(t, err)
	// Both events start in an hour for now: nothing is due until the
	// test moves them.
	event := func(title string) int64 {
		id, err := seed.CreateEvent(ctx, db.Pool, seed.Event{
			GenerationID: club.GenerationID, Title: title, Start: now.Add(time.Hour),
			StartMinutes: -10, LateMinutes: 10, FailMinutes: 30,
		}, now.Add(-24*time.Hour))
		require.NoError(t, err)
		return id
	}
	done, killed := event("Settled before the kill"), event("Settling at the kill")
	// Every member opened the check-in of the second event without
	// checking in: its settlement turns their UNCHECKED rows ABSENT.
	_, err = db.Pool.Exec(ctx, `
		INSERT INTO attendances (status, "timestamp", created_at, modified_at, is_modified, event_id, generation_mapping_id)
		SELECT $1, $2, $2, $2, false, $3, gm.id FROM generation_mapping gm WHERE gm.generation_id = $4`,
		attendance.StatusUnchecked, now.Add(-time.Hour), killed, club.GenerationID)
	require.NoError(t, err)

	sweepAtOnce(t, db)
	a := startRunner(t, db, opts, "--no-http", "--sweep-interval", "1h")
	aID, _ := a.waitLog(t, "wasso-runner started", time.Minute)["client_id"].(string)
	require.NotEmpty(t, aID)
	require.EqualValues(t, rescueAfter, a.waitLog(t, "wasso-runner started", time.Minute)["rescue_after"])
	// The leader's first sweep, with nothing due, comes and goes: from
	// here on only the per-event jobs settle.
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`, attendance.SweepKind) == 1
	}, time.Minute, 50*time.Millisecond)

	lock, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer lock.Rollback(ctx) //nolint:errcheck // rolled back below
	var lockPID int
	require.NoError(t, lock.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&lockPID))
	_, err = lock.Exec(ctx, `SELECT id FROM attendances WHERE event_id = $1 ORDER BY id DESC LIMIT 1 FOR UPDATE`, killed)
	require.NoError(t, err)
	// The first event comes due and is settled on its own; only then the
	// second, whose settlement (which may take other due events into its
	// batch) waits for the test's row lock inside its transaction.
	_, err = db.Pool.Exec(ctx, `UPDATE events SET start_datetime = now() - interval '40 minutes' WHERE id = $1`, done)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, done) == members
	}, time.Minute, 50*time.Millisecond)
	_, err = db.Pool.Exec(ctx, `UPDATE events SET start_datetime = now() - interval '40 minutes' WHERE id = $1`, killed)
	require.NoError(t, err)
	var blockedPID int
	require.Eventually(t, func() bool {
		err := db.Pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, lockPID).Scan(&blockedPID)
		return err == nil
	}, time.Minute, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, done) == members
	}, time.Minute, 50*time.Millisecond)
	jobID := settleJobOf(db, killed)
	require.NotZero(t, jobID)
	require.Equal(t, "running", jobState(t, db, jobID))

	held, ok := inspectActiveJob(db, jobID)
	require.True(t, ok, "inspect active lists the job")
	require.Equal(t, aID, held.Runner.ID)
	require.Equal(t, "alive", held.Runner.State)
	require.Equal(t, a.cmd.Process.Pid, held.Runner.PID)

	a.signal(t, syscall.SIGKILL)
	killedAt := time.Now()
	require.Equal(t, -1, a.wait(t, time.Minute), "killed by a signal")
	require.Equal(t, "running", jobState(t, db, jobID), "the job was still running when the runner died (well within its %s timeout)", jobTimeout)

	// Its heartbeat stops: once RunnerLostAfter has passed, inspect
	// active reports the runner lost. No other runner runs yet, so the job
	// cannot have been rescued meanwhile.
	require.Eventually(t, func() bool {
		held, ok = inspectActiveJob(db, jobID)
		return ok && held.Runner.State == "lost"
	}, time.Minute, 500*time.Millisecond)
	require.NotNil(t, held.Runner.Alive)
	require.False(t, *held.Runner.Alive)
	lostAfter := time.Since(killedAt)
	out := inspectTable(t, db, "active")
	require.Contains(t, out, "LOST (no heartbeat for")
	require.Contains(t, out, "held by a runner that is gone")

	// The dead runner's backend still waits for the lock. Once it gets
	// it, it finds its client gone and its transaction rolls back.
	require.NoError(t, lock.Rollback(ctx))
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, blockedPID) == 0
	}, time.Minute, 50*time.Millisecond)
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE event_id = $1`, killed), "no claim survives")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status <> $2`, killed, attendance.StatusUnchecked), "no row turned ABSENT")
	require.Equal(t, members, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, killed), "no row created")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND (args->>'event_id')::bigint = $2`, attendance.NotifyAbsentKind, killed), "no notice")
	require.Equal(t, members, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, done))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE event_id = $1`, done))
	require.Equal(t, "running", jobState(t, db, jobID), "nobody rescues it while no runner runs")

	// A second runner, without the periodic sweep: only the rescue of the
	// stuck job can settle the event.
	b := startRunner(t, db, opts, "--no-http", "--no-periodic")
	bID, _ := b.waitLog(t, "wasso-runner started", time.Minute)["client_id"].(string)
	var rescuedAt time.Time
	require.Eventually(t, func() bool {
		if rescuedAt.IsZero() && jobState(t, db, jobID) != "running" {
			rescuedAt = time.Now()
		}
		return jobState(t, db, jobID) == "completed"
	}, 3*time.Minute, 100*time.Millisecond)
	settledAt := time.Now()
	t.Logf("SIGKILL -> runner reported lost: %s; -> job rescued: %s; -> event settled: %s (the second runner started %s after the kill and rescued the job of the lost runner once it led)",
		lostAfter.Round(time.Second), rescuedAt.Sub(killedAt).Round(time.Second), settledAt.Sub(killedAt).Round(time.Second), lostAfter.Round(time.Second))

	// Attempt 1 was the dead runner's; the rescue recorded an error for
	// it, and the second runner retried it (attempt 2, or later should a
	// retry hit a passing database error on a busy server).
	job := faultJob(controlClient(t, db), jobID)
	require.NotNil(t, job)
	require.GreaterOrEqual(t, job.Attempt, 2)
	require.Equal(t, aID, job.AttemptedBy[0])
	for _, by := range job.AttemptedBy[1:] {
		require.Equal(t, bID, by)
	}
	require.Len(t, job.Errors, job.Attempt-1)
	require.Equal(t, 1, job.Errors[0].Attempt)
	require.True(t, strings.HasPrefix(job.Errors[0].Error, "Job of a lost runner rescued: no heartbeat from "+aID), job.Errors[0].Error)
	listed := runCLI(t, cliOpts{}, args([]string{"jobs", "list", "--kind", attendance.SettleEventKind}, dbArgs(db))...)
	require.Equal(t, 0, listed.code, listed.String())
	require.Contains(t, listed.stdout, "Job of a lost runner rescued")

	// Settled once: every member has exactly one row, ABSENT; each event
	// was claimed once and has one notice.
	for _, ev := range []int64{done, killed} {
		require.Equal(t, members, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, ev))
		require.Equal(t, members, count(t, db.Pool, `SELECT count(DISTINCT generation_mapping_id) FROM attendances WHERE event_id = $1 AND status = 3`, ev))
		require.Equal(t, 1, count(t, db.Pool, `SELECT settle_count FROM wasso_settlement WHERE event_id = $1`, ev))
		require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND (args->>'event_id')::bigint = $2`, attendance.NotifyAbsentKind, ev))
	}

	b.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, b.wait(t, time.Minute))
	// A clean stop is recorded as such; the killed runner's never was.
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_runner WHERE client_id = $1 AND stopped_at IS NOT NULL`, bID))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_runner WHERE client_id = $1 AND stopped_at IS NULL`, aID))
}

// TestJobPanicAndTimeout: a job that panics and a job that outlives its
// timeout each fail their attempt with the error recorded (the panic
// value and stack, the context deadline), are retried with River's
// backoff (attempt 2 waits 16s, not 1s), and show in `jobs list` and
// `inspect scheduled`; meanwhile the runner stays up, answers /healthz
// and settles another event. Once the slow database is fixed, retrying
// the timed-out job settles its event once.
//
// The panic comes from test.panic, a job kind of the fault-injection
// build. The timeout is real: a trigger in the test's schema makes
// Postgres sleep 3s on each attendance row written for one event, and
// run.job_timeout is 1s.
func TestJobPanicAndTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	bin := faultBinary(t)

	_, slow := dueClub(t, db, 1)
	_, err := db.Pool.Exec(ctx, fmt.Sprintf(`
		CREATE FUNCTION fault_slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_sleep(3);
			RETURN NEW;
		END $$;
		CREATE TRIGGER fault_slow_write BEFORE INSERT OR UPDATE ON attendances
			FOR EACH ROW WHEN (NEW.event_id = %d) EXECUTE FUNCTION fault_slow_write();`, slow))
	require.NoError(t, err)

	p := startRunner(t, db, cliOpts{bin: bin, env: []string{"WASSO_RUN_JOB_TIMEOUT=1s"}}, "--no-periodic")
	base := p.baseURL(t)
	client := controlClient(t, db)
	res, err := client.Insert(ctx, panicArgs{Message: "injected panic"}, nil)
	require.NoError(t, err)
	panicID := res.Job.ID
	var timeoutID int64
	require.Eventually(t, func() bool {
		timeoutID = settleJobOf(db, slow)
		return timeoutID != 0
	}, time.Minute, 50*time.Millisecond)

	// Both fail their first attempt, are retried a second or so later,
	// fail again and wait for the second backoff.
	failedTwice := func(id int64) func() bool {
		return func() bool {
			j := faultJob(client, id)
			return j != nil && j.Attempt >= 2 && j.State == rivertype.JobStateRetryable
		}
	}
	require.Eventually(t, failedTwice(panicID), 2*time.Minute, 100*time.Millisecond)
	require.Eventually(t, failedTwice(timeoutID), 2*time.Minute, 100*time.Millisecond)

	for _, tc := range []struct {
		id   int64
		want string
	}{
		{panicID, "injected panic"},
		{timeoutID, "context deadline exceeded"},
	} {
		j := faultJob(client, tc.id)
		require.NotNil(t, j)
		require.Len(t, j.Errors, j.Attempt, "one error per attempt")
		for i, e := range j.Errors {
			require.Equal(t, i+1, e.Attempt)
			require.Contains(t, e.Error, tc.want)
		}
		// An attempt error's At is when the attempt began.
		last := j.Errors[len(j.Errors)-1]
		require.Greater(t, j.ScheduledAt.Sub(last.At), 10*time.Second,
			"%s: retried with backoff: the retry after attempt %d waits %d^4 s", j.Kind, j.Attempt, j.Attempt)
	}
	require.Contains(t, faultJob(client, panicID).Errors[0].Trace, "panicWorker", "the panic's stack is recorded")

	// The CLI shows them and their errors.
	listed := runCLI(t, cliOpts{}, args([]string{"jobs", "list", "--state", "retryable"}, dbArgs(db))...)
	require.Equal(t, 0, listed.code, listed.String())
	require.Contains(t, listed.stdout, "injected panic")
	var retryable []struct {
		ID        int64  `json:"id"`
		State     string `json:"state"`
		Attempt   int    `json:"attempt"`
		LastError string `json:"last_error"`
	}
	listed = runCLI(t, cliOpts{}, args([]string{"jobs", "list", "--state", "retryable", "--json"}, dbArgs(db))...)
	require.Equal(t, 0, listed.code, listed.String())
	require.NoError(t, json.Unmarshal([]byte(listed.stdout), &retryable), listed.stdout)
	lastErrors := map[int64]string{}
	for _, j := range retryable {
		lastErrors[j.ID] = j.LastError
	}
	require.Equal(t, "injected panic", lastErrors[panicID])
	require.Contains(t, lastErrors[timeoutID], "context deadline exceeded")
	var sched struct {
		Jobs []jobRow `json:"jobs"`
	}
	inspectJSON(t, db, "scheduled", &sched)
	require.Subset(t, ids(sched.Jobs), []int64{panicID, timeoutID}, "inspect scheduled lists the retries")

	// The runner is up and still works other jobs.
	code, body := doHTTP(t, "GET", base+"/healthz", nil, "", "")
	require.Equal(t, http.StatusOK, code, body)
	// The failures are counted as River reports them, a moment after it
	// stored them.
	require.Eventually(t, func() bool {
		code, metrics, err := tryHTTP("GET", base+"/metrics", nil, "", "")
		return err == nil && code == http.StatusOK &&
			metricValue(metrics, `wasso_jobs_failed_total{kind="test.panic"}`) >= 2 &&
			metricValue(metrics, `wasso_jobs_failed_total{kind="attendance.settle_event"}`) >= 2
	}, time.Minute, 200*time.Millisecond, "two failures of each kind, in the metrics")
	var now time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now))
	other, err := seed.CreateClub(ctx, db.Pool, "Healthy club", 3, now.Add(-48*time.Hour))
	require.NoError(t, err)
	healthy, err := seed.CreateEvent(ctx, db.Pool, seed.Event{
		GenerationID: other.GenerationID, Title: "Healthy meeting", Start: now.Add(-40 * time.Minute),
		StartMinutes: -10, LateMinutes: 10, FailMinutes: 30,
	}, now.Add(-24*time.Hour))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		id := settleJobOf(db, healthy)
		return id != 0 && jobState(t, db, id) == "completed"
	}, time.Minute, 100*time.Millisecond)
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, healthy))
	code, body = doHTTP(t, "GET", base+"/healthz", nil, "", "")
	require.Equal(t, http.StatusOK, code, body)

	// Every timed-out attempt rolled back. With the database fixed
	// (dropping the trigger waits for the sleeping backends left by the
	// timed-out attempts), a retry settles the event, once.
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, slow))
	_, err = db.Pool.Exec(ctx, `DROP TRIGGER fault_slow_write ON attendances`)
	require.NoError(t, err)
	retried := runCLI(t, cliOpts{}, args([]string{"jobs", "retry", strconv.FormatInt(timeoutID, 10)}, dbArgs(db))...)
	require.Equal(t, 0, retried.code, retried.String())
	require.Eventually(t, func() bool { return jobState(t, db, timeoutID) == "completed" }, time.Minute, 100*time.Millisecond)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, slow))
	require.Equal(t, 1, count(t, db.Pool, `SELECT settle_count FROM wasso_settlement WHERE event_id = $1`, slow))

	select {
	case <-p.done:
		t.Fatalf("the runner exited (code %d)", p.code)
	default:
	}
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
}

// TestConfigRescueAfter: run.rescue_after is derived from the job
// timeouts unless set, and one shorter than the longest job timeout is a
// configuration error naming the key.
func TestConfigRescueAfter(t *testing.T) {
	t.Parallel()
	out := resolvedConfig(t, cliOpts{})
	require.Equal(t, "1m0s", out.Keys["run.job_timeout"].Value)
	require.Equal(t, "2m0s", out.Keys["run.rescue_after"].Value, "River's one-minute job timeout plus a minute")
	out = resolvedConfig(t, cliOpts{env: []string{"WASSO_RUN_JOB_TIMEOUT=10s", "WASSO_SWEEP_TIMEOUT=5m"}})
	require.Equal(t, "6m0s", out.Keys["run.rescue_after"].Value, "the longest timeout, the sweep's, plus a minute")
	out = resolvedConfig(t, cliOpts{env: []string{"WASSO_RUN_RESCUE_AFTER=90s"}})
	require.Equal(t, "1m30s", out.Keys["run.rescue_after"].Value)
	require.Equal(t, "env WASSO_RUN_RESCUE_AFTER", out.Keys["run.rescue_after"].Source)

	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"WASSO_RUN_RESCUE_AFTER=30s"}, []string{"run.rescue_after (env WASSO_RUN_RESCUE_AFTER)", "shorter than the longest job timeout (1m0s)"}},
		{[]string{"WASSO_RUN_RESCUE_AFTER=2m", "WASSO_NOTIFY_TIMEOUT=3m"}, []string{"run.rescue_after", "shorter than the longest job timeout (3m0s)"}},
		{[]string{"WASSO_RUN_RESCUE_AFTER=-1s"}, []string{"run.rescue_after", "must be zero"}},
		{[]string{"WASSO_RUN_JOB_TIMEOUT=0s"}, []string{"run.job_timeout", "must be positive"}},
	} {
		res := runCLI(t, cliOpts{env: tc.env}, "config")
		require.Equal(t, 2, res.code, res.String())
		msg := oneLine(t, res.stderr)
		for _, want := range tc.want {
			require.True(t, strings.Contains(msg, want), "%v: %q does not contain %q", tc.env, msg, want)
		}
	}
}
