package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/pgtemp"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/migrations"
	wassoriver "github.com/wasso/scheduler/river"
)

// outageDown is how long the database stays away in the outage tests:
// long enough for every pool connection to fail, for River's notifier to
// back off several times and for the leader to miss renewals of its term,
// as in a real restart of Postgres or a failover.
const outageDown = 10 * time.Second

// outageSweepInterval is the sweep interval of the runners under test:
// short, so that a sweep is running or due whenever a fault hits.
const outageSweepInterval = 2 * time.Second

// clubMembers is the size of the club the events of these tests belong
// to. Each event starts with one PRESENT row (member 0) and one UNCHECKED
// row (member 1), so a settlement updates one row and creates the others:
// settled once, an event has exactly clubMembers rows, all ABSENT but
// member 0's.
const clubMembers = 4

// eventDB is a database a runner under test works on, as the test sees it.
type eventDB struct {
	// pool finds River's tables and the Wasso tables through search_path.
	pool *pgxpool.Pool
	// inserter is an insert-only River client, for events scheduled the
	// way the backend does (attendance.ScheduleEventTx).
	inserter *river.Client[pgx.Tx]
	club     *seed.Club
}

func newEventDB(t *testing.T, pool *pgxpool.Pool, schema string) *eventDB {
	t.Helper()
	ctx := context.Background()
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: schema,
		Hooks:  []rivertype.Hook{&wassoriver.ExactTimeHook{}},
	})
	require.NoError(t, err)
	club, err := seed.CreateClub(ctx, pool, "Club "+t.Name(), clubMembers, time.Now().Add(-48*time.Hour))
	require.NoError(t, err)
	return &eventDB{pool: pool, inserter: inserter, club: club}
}

// newEvent writes an event whose deadline is deadline, with its PRESENT
// and UNCHECKED rows, in one transaction. With api, the transaction also
// schedules the event's settle_event job (attendance.ScheduleEventTx, as a
// Go backend does); without, it is plain SQL, as the Django backend
// writes, and the leader's deadline discovery must find the event. It
// returns errors instead of failing the test, for goroutines.
func (e *eventDB) newEvent(ctx context.Context, deadline time.Time, api bool) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		id, err = seed.CreateEvent(ctx, tx, seed.Event{
			GenerationID: e.club.GenerationID,
			Title:        "Meeting at " + deadline.Format(time.TimeOnly),
			Start:        deadline.Add(-30 * time.Minute),
			StartMinutes: -10,
			LateMinutes:  10,
			FailMinutes:  30,
		}, time.Now())
		if err != nil {
			return err
		}
		if _, err := seed.AddAttendance(ctx, tx, id, e.club.MappingIDs[0], attendance.StatusPresent, time.Now()); err != nil {
			return err
		}
		if _, err := seed.AddAttendance(ctx, tx, id, e.club.MappingIDs[1], attendance.StatusUnchecked, time.Now()); err != nil {
			return err
		}
		if api {
			_, err = attendance.ScheduleEventTx(ctx, tx, e.inserter, id)
		}
		return err
	})
	return id, err
}

// mustEvent is newEvent for the test goroutine.
func (e *eventDB) mustEvent(t *testing.T, deadline time.Time, api bool) int64 {
	t.Helper()
	id, err := e.newEvent(context.Background(), deadline, api)
	require.NoError(t, err)
	return id
}

// dbNow is the database clock, which deadlines are compared with.
func (e *eventDB) dbNow(t *testing.T) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&now))
	return now
}

// settledCount counts the events of ids settled for their current
// deadline.
func (e *eventDB) settledCount(ids []int64) (int, error) {
	return queryInt(e.pool, `
		SELECT count(*) FROM events e
		JOIN wasso_settlement s ON s.event_id = e.id AND s.deadline = wasso_deadline(e.start_datetime, e.fail_minutes)
		WHERE e.id = ANY($1)`, ids)
}

// waitSettled waits until every event of ids is settled, failing the test
// if the runner exits first.
func (e *eventDB) waitSettled(t *testing.T, p *proc, ids []int64, timeout time.Duration) {
	t.Helper()
	waitFor(t, p, timeout, fmt.Sprintf("events %v settled", ids), func() bool {
		n, err := e.settledCount(ids)
		return err == nil && n == len(ids)
	})
}

// readyz asks a runner's /readyz. It returns errors instead of failing the
// test, for Eventually conditions.
func readyz(base string) (int, map[string]string, error) {
	resp, err := httpClient.Get(base + "/readyz")
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var body map[string]string
	if err := json.Unmarshal(b, &body); err != nil {
		return 0, nil, fmt.Errorf("readyz body %q: %w", b, err)
	}
	return resp.StatusCode, body, nil
}

// fault takes the database away from a runner and gives it back.
type fault struct {
	begin func(t *testing.T)
	end   func(t *testing.T)
}

// outageTimes are what runThroughOutage measured, from the end of the
// fault.
type outageTimes struct {
	// ready is when /readyz answered 200 again.
	ready time.Duration
	// settled is when the first settlement after the fault committed (its
	// settled_at, the claim's clock).
	settled time.Duration
	// sweep is when the first sweep after the fault started: the leader is
	// back (it may have lost its term during the fault).
	sweep time.Duration
}

// runThroughOutage has runner p, serving HTTP at base, live through f
// while it works, and checks that it recovers by itself: it keeps running,
// /readyz reports the outage (503 with the database as reason) and then
// recovery (200), the events that came due during the outage are settled
// after it, and events scheduled after it (through the API and through
// discovery) are settled too. It returns every event it wrote.
func runThroughOutage(t *testing.T, e *eventDB, p *proc, base string, f fault) ([]int64, outageTimes) {
	t.Helper()
	var all []int64
	// The leader's discovery must be running for the events written as
	// the Django backend does.
	p.waitLog(t, "deadline discovery started", time.Minute)

	// Working before the fault: one event settled at its deadline.
	before := e.mustEvent(t, e.dbNow(t).Add(time.Second), true)
	all = append(all, before)
	e.waitSettled(t, p, []int64{before}, time.Minute)

	// Events coming due while the database is away, written as the Django
	// backend writes them; the fault begins once the leader has planned
	// them (their settle_event jobs are waiting).
	now := e.dbNow(t)
	var (
		during    []int64
		deadlines []time.Time
	)
	for i := range 4 {
		deadline := now.Add(5*time.Second + time.Duration(i)*outageDown/6)
		during = append(during, e.mustEvent(t, deadline, false))
		deadlines = append(deadlines, deadline)
	}
	all = append(all, during...)
	waitFor(t, p, time.Minute, "the outage's events planned", func() bool {
		n, err := queryInt(e.pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND (args->>'event_id')::bigint = ANY($2)`, attendance.SettleEventKind, during)
		return err == nil && n == len(during)
	})

	// A settlement in flight when the fault hits: the event's job runs at
	// its deadline and waits for a lock the test holds on attendances, so
	// that the fault cuts its transaction off. It must be retried, neither
	// lost nor settling the event twice.
	ctx := context.Background()
	held := e.mustEvent(t, e.dbNow(t).Add(time.Second), true)
	all = append(all, held)
	lock, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = lock.Exec(ctx, `LOCK TABLE attendances IN EXCLUSIVE MODE`)
	require.NoError(t, err)
	locked := e.dbNow(t)
	waitFor(t, p, time.Minute, "a settlement waiting for the test's lock", func() bool {
		n, err := queryInt(e.pool, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'attendances'::regclass`)
		return err == nil && n > 0
	})

	f.begin(t)
	begun := time.Now()
	// Gone already if the fault took the test's connection too.
	_ = lock.Rollback(ctx)
	var reason string
	waitFor(t, p, outageDown, "/readyz reporting the outage", func() bool {
		code, body, err := readyz(base)
		reason = body["reason"]
		return err == nil && code == 503
	})
	t.Logf("/readyz during the outage: 503 %q", reason)
	require.Contains(t, reason, "database: ")
	code, body := doHTTP(t, "GET", base+"/healthz", nil, "", "")
	require.Equal(t, 200, code, "a process manager must not restart the runner for an outage: %s", body)
	code, metrics := doHTTP(t, "GET", base+"/metrics", nil, "", "")
	require.Equal(t, 200, code, "/metrics answers during the outage")
	require.Equal(t, 0.0, metricValue(metrics, `wasso_runner_ready`), "wasso_runner_ready follows /readyz")
	select {
	case <-p.done:
		t.Fatalf("wasso-runner exited (code %d) during the outage", p.code)
	case <-time.After(time.Until(begun.Add(outageDown))):
	}

	ending := time.Now()
	f.end(t)
	ended := time.Now()
	var times outageTimes
	waitFor(t, p, time.Minute, "/readyz 200 after the outage", func() bool {
		code, _, err := readyz(base)
		return err == nil && code == 200
	})
	times.ready = time.Since(ended)
	e.waitSettled(t, p, during, time.Minute)
	// The fault was real: no event of the outage was settled before it
	// ended (the first one's deadline was past long before). From the
	// moment the test took its lock until the fault began, their
	// settlements could only wait for it; an event whose deadline came
	// before that moment (a machine stalled for seconds) may have been
	// settled before the fault, and says nothing.
	var dueLocked []int64
	for i, id := range during {
		if deadlines[i].After(locked) {
			dueLocked = append(dueLocked, id)
		}
	}
	require.NotEmpty(t, dueLocked, "every event of the outage came due before the test took its lock, at %s", locked)
	var first time.Time
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT min(settled_at) FROM wasso_settlement WHERE event_id = ANY($1)`, dueLocked).Scan(&first))
	times.settled = first.Sub(ended)
	require.False(t, first.Before(ending), "an event due during the outage was settled at %s, before the outage ended (%s)", first, ending)
	var sweep time.Time
	waitFor(t, p, time.Minute, "a sweep after the outage", func() bool {
		err := e.pool.QueryRow(ctx, `SELECT min(attempted_at) FROM river_job WHERE kind = $1 AND state = 'completed' AND attempted_at > $2`, attendance.SweepKind, ended).Scan(&sweep)
		return err == nil
	})
	times.sweep = sweep.Sub(ended)

	// Working after the fault: events due from now on, one scheduled
	// through the API, one found by discovery.
	now = e.dbNow(t)
	after := []int64{e.mustEvent(t, now.Add(2*time.Second), true), e.mustEvent(t, now.Add(3*time.Second), false)}
	all = append(all, after...)
	e.waitSettled(t, p, append(after, held), time.Minute)

	waitJobsDone(t, e.pool, p)
	// The settlement cut off was tried again (the retry, or a sweep that
	// had claimed the event first, settled it).
	retried, err := queryInt(e.pool, `SELECT count(*) FROM river_job WHERE attempt > 1 AND kind IN ($1, $2)`, attendance.SettleEventKind, attendance.SweepKind)
	require.NoError(t, err)
	require.Positive(t, retried, "no settlement was retried: none was cut off by the fault")
	return all, times
}

// waitJobsDone waits until every settle_event and notify_absent job has
// completed, and no sweep is left running or waiting to be retried, so
// that nothing the checks look at is still in flight.
func waitJobsDone(t *testing.T, pool *pgxpool.Pool, p *proc) {
	t.Helper()
	waitFor(t, p, 2*time.Minute, "every job finished", func() bool {
		n, err := queryInt(pool, `
			SELECT count(*) FROM river_job
			WHERE (kind <> 'attendance.sweep' AND state <> 'completed')
			   OR (kind = 'attendance.sweep' AND state IN ('running', 'retryable'))`)
		return err == nil && n == 0
	})
}

// requireSettledOnce checks what the outage and churn tests promise: every
// event of ids is settled for its current deadline exactly once (one
// settlement, one absent notice, one row per member, none doubled), no
// event is left unsettled, no job was doubled (at most one settle_event
// job per event, exactly one with exactJobs, at most one sweep per
// interval slot) and none failed for good.
func requireSettledOnce(t *testing.T, pool *pgxpool.Pool, ids []int64, exactJobs bool) {
	t.Helper()
	ctx := context.Background()
	dupes, err := queryInt(pool, `SELECT count(*) FROM (SELECT 1 FROM attendances GROUP BY event_id, generation_mapping_id HAVING count(*) > 1) d`)
	require.NoError(t, err)
	require.Zero(t, dupes, "(event, member) pairs with more than one attendance row")
	unsettled, err := queryInt(pool, `
		SELECT count(*) FROM events e
		WHERE wasso_deadline(e.start_datetime, e.fail_minutes) <= now()
		  AND NOT EXISTS (SELECT 1 FROM wasso_settlement s WHERE s.event_id = e.id AND s.deadline = wasso_deadline(e.start_datetime, e.fail_minutes))`)
	require.NoError(t, err)
	require.Zero(t, unsettled, "due events not settled")

	type eventState struct {
		ID          int64
		Rows        int
		Absent      int
		Present     int
		SettleCount int
		Notices     int
		Jobs        int
	}
	rows, err := pool.Query(ctx, `
		SELECT e.id,
		       (SELECT count(*) FROM attendances a WHERE a.event_id = e.id),
		       (SELECT count(*) FROM attendances a WHERE a.event_id = e.id AND a.status = 3),
		       (SELECT count(*) FROM attendances a WHERE a.event_id = e.id AND a.status = 1),
		       coalesce((SELECT s.settle_count FROM wasso_settlement s WHERE s.event_id = e.id), 0),
		       (SELECT count(*) FROM river_job j WHERE j.kind = 'attendance.notify_absent' AND (j.args->>'event_id')::bigint = e.id),
		       (SELECT count(*) FROM river_job j WHERE j.kind = 'attendance.settle_event' AND (j.args->>'event_id')::bigint = e.id)
		FROM unnest($1::bigint[]) AS e(id)
		ORDER BY e.id`, ids)
	require.NoError(t, err)
	states, err := pgx.CollectRows(rows, pgx.RowToStructByPos[eventState])
	require.NoError(t, err)
	require.Len(t, states, len(ids))
	for _, s := range states {
		require.Equal(t, eventState{
			ID: s.ID, Rows: clubMembers, Absent: clubMembers - 1, Present: 1,
			SettleCount: 1, Notices: 1, Jobs: s.Jobs,
		}, s, "event %d: rows, absent, present, settlements, notices", s.ID)
		if exactJobs {
			require.Equal(t, 1, s.Jobs, "settle_event jobs of event %d", s.ID)
		} else {
			require.LessOrEqual(t, s.Jobs, 1, "settle_event jobs of event %d", s.ID)
		}
	}

	requireOneSweepPerSlot(t, pool)
	failed, err := queryInt(pool, `SELECT count(*) FROM river_job WHERE state IN ('discarded', 'cancelled')`)
	require.NoError(t, err)
	require.Zero(t, failed, "jobs discarded or cancelled")
	var retried int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE attempt > 1`).Scan(&retried))
	t.Logf("%d events settled once each; %d job(s) needed more than one attempt", len(ids), retried)
}

// requireOneSweepPerSlot checks that no interval slot has two sweeps,
// the way TestTwoRunnersOneSweepPerInterval counts: every sweep comes
// from the stored attendance-sweep schedule, whose jobs carry the slot
// they were enqueued for in their metadata; no slot has two jobs, and
// every slot lies on the schedule's grid, one interval apart (a second
// enqueuer at another phase would add slots off it). Slots may be missing
// (no leader for a while), not doubled.
func requireOneSweepPerSlot(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT id, (metadata->>'slot')::timestamptz FROM river_job
		WHERE kind = $1 ORDER BY 2, 1`, attendance.SweepKind)
	require.NoError(t, err)
	type sweep struct {
		ID   int64
		Slot *time.Time
	}
	sweeps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sweep])
	require.NoError(t, err)
	for i, s := range sweeps {
		require.NotNil(t, s.Slot, "sweep %d came from no schedule slot", s.ID)
		if i == 0 {
			continue
		}
		gap := s.Slot.Sub(*sweeps[i-1].Slot)
		require.NotZero(t, gap, "sweeps %d and %d share the slot of %s", sweeps[i-1].ID, s.ID, s.Slot)
		require.Zero(t, gap%outageSweepInterval, "sweep %d's slot is %s after the previous one, off the %s grid", s.ID, gap, outageSweepInterval)
	}
}

// startOutageRunner starts a runner on databaseURL with a short sweep
// interval and HTTP on a free port, and returns it with its base URL.
func startOutageRunner(t *testing.T, databaseURL, schema string) (*proc, string) {
	t.Helper()
	p := startRun(t, cliOpts{}, "run", "--log-format", "json", "--http-addr", "127.0.0.1:0", "--concurrency", "2",
		"--database-url", databaseURL, "--schema", schema, "--sweep-interval", outageSweepInterval.String())
	return p, p.baseURL(t)
}

// stopRunner stops a runner with SIGTERM and requires a clean exit.
func stopRunner(t *testing.T, p *proc) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute), "exit code")
}

// runnerBackends returns the distinct application names of the backends
// of role, the runner's.
func runnerBackends(pool *pgxpool.Pool, role string) ([]string, error) {
	rows, err := pool.Query(context.Background(), `SELECT DISTINCT coalesce(application_name, '') FROM pg_stat_activity WHERE usename = $1`, role)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// terminateBackends terminates every backend of role and returns how many
// there were.
func terminateBackends(pool *pgxpool.Pool, role string) (int, error) {
	return queryInt(pool, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1`, role)
}

// TestRunnerConnectionsTerminated: every connection of a working runner
// is terminated (pg_terminate_backend), once, and then for ten seconds
// during which it cannot log in again. It recovers without a restart:
// /readyz reports the outage and then the recovery, the events that came
// due during it are settled right after, events due later are settled at
// their deadline, and nothing is lost or done twice.
//
// The runner connects as a role of the test's own, so that its backends
// are told apart from every other test's runners, and the outage is
// ALTER ROLE ... NOLOGIN followed by terminating them: the runner's pool
// can then open no connection until ALTER ROLE ... LOGIN, as when a
// database is restarted or fails over.
func TestRunnerConnectionsTerminated(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	admin := wassotest.AdminPool(t)
	ctx := context.Background()
	role := db.Schema + "_runner"
	_, err := admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN SUPERUSER`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(ctx, `ALTER ROLE `+role+` NOLOGIN`)
		_, _ = terminateBackends(admin, role)
		_, err := admin.Exec(ctx, `DROP ROLE `+role)
		require.NoError(t, err)
	})
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	u.User = url.User(role)

	e := newEventDB(t, db.Pool, db.Schema)
	p, base := startOutageRunner(t, u.String(), db.Schema)

	// The runner names its connections, so that an operator can find them
	// in pg_stat_activity, as this test does.
	var names []string
	waitFor(t, p, time.Minute, "the runner's backends", func() bool {
		names, err = runnerBackends(admin, role)
		return err == nil && len(names) > 0
	})
	require.Equal(t, []string{"wasso-runner"}, names, "application_name of the runner's connections")

	// Every connection terminated at once: the pool opens new ones.
	first := e.mustEvent(t, e.dbNow(t).Add(time.Second), true)
	e.waitSettled(t, p, []int64{first}, time.Minute)
	n, err := terminateBackends(admin, role)
	require.NoError(t, err)
	t.Logf("terminated the runner's %d connections", n)
	require.Positive(t, n)
	next := e.mustEvent(t, e.dbNow(t).Add(2*time.Second), false)
	e.waitSettled(t, p, []int64{next}, time.Minute)

	// Every connection terminated, and none allowed for ten seconds.
	ids, times := runThroughOutage(t, e, p, base, fault{
		begin: func(t *testing.T) {
			_, err := admin.Exec(ctx, `ALTER ROLE `+role+` NOLOGIN`)
			require.NoError(t, err)
			// A connection being opened as the role changes may get
			// through; terminate until none is left.
			waitFor(t, nil, 10*time.Second, "no backend of the runner left", func() bool {
				_, err := terminateBackends(admin, role)
				left, err2 := queryInt(admin, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1`, role)
				return err == nil && err2 == nil && left == 0
			})
		},
		end: func(t *testing.T) {
			_, err := admin.Exec(ctx, `ALTER ROLE `+role+` LOGIN`)
			require.NoError(t, err)
		},
	})
	t.Logf("from the end of the outage: /readyz 200 after %s, first settlement after %s, first sweep after %s", times.ready, times.settled, times.sweep)
	stopRunner(t, p)
	requireSettledOnce(t, db.Pool, append(ids, first, next), true)
}

// TestRunnerSurvivesPostgresRestart: the Postgres server of a working
// runner is stopped (fast shutdown: every client disconnected) and
// started again ten seconds later on the same port. The runner recovers
// without a restart: /readyz reports the outage and then the recovery,
// the events that came due while the server was down are settled right
// after, events due later at their deadline, and nothing is lost or done
// twice. The server is a private cluster (internal/pgtemp), so that the
// other tests' database stays up.
func TestRunnerSurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	if _, err := pgtemp.FindBinaries(); errors.Is(err, pgtemp.ErrNoBinaries) {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgtemp.Start(ctx, pgtemp.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })
	dbURL := cluster.URL(pgtemp.Database)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrations.Up(ctx, pool, migrations.Options{WithWassoSchema: true})
	require.NoError(t, err)

	e := newEventDB(t, pool, "")
	p, base := startOutageRunner(t, dbURL, "")
	ids, times := runThroughOutage(t, e, p, base, fault{
		begin: func(t *testing.T) { require.NoError(t, cluster.StopServer(context.Background())) },
		end:   func(t *testing.T) { require.NoError(t, cluster.StartServer(context.Background())) },
	})
	t.Logf("from the end of the restart: /readyz 200 after %s, first settlement after %s, first sweep after %s", times.ready, times.settled, times.sweep)
	stopRunner(t, p)
	requireSettledOnce(t, pool, ids, true)
}
