package runner_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/pgtemp"
	"github.com/wasso/scheduler/migrations"
)

// replicatedPair is a primary with a streaming standby, each a private
// cluster (internal/pgtemp), and the multi-host URL a runner is given for
// them: target_session_attrs=read-write makes every new connection go to
// whichever of the two accepts writes.
type replicatedPair struct {
	primary, standby *pgtemp.Cluster
	url              string
	// pool is the test's own, on the same URL: it follows the primary
	// through the failover as the runner does.
	pool *pgxpool.Pool
}

// startReplicatedPair starts the primary, migrates it, and makes the
// standby from it (pg_basebackup -R).
func startReplicatedPair(t *testing.T) *replicatedPair {
	t.Helper()
	if _, err := pgtemp.FindBinaries(); errors.Is(err, pgtemp.ErrNoBinaries) {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := pgtemp.Start(ctx, pgtemp.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, primary.Stop()) })
	pool, err := pgxpool.New(ctx, primary.URL(pgtemp.Database))
	require.NoError(t, err)
	_, err = migrations.Up(ctx, pool, migrations.Options{WithWassoSchema: true})
	pool.Close()
	require.NoError(t, err)

	standby, err := pgtemp.StartStandby(ctx, primary, pgtemp.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, standby.Stop()) })
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write",
		primary.Port(), standby.Port(), pgtemp.Database)
	pool, err = pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &replicatedPair{primary: primary, standby: standby, url: url, pool: pool}
}

// catchUp waits until the standby has replayed what the primary wrote.
func (r *replicatedPair) catchUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, r.standby.CatchUp(ctx, r.primary))
}

// failOver kills the primary the way a crash of its host does, waits
// until the runner's /readyz reports the database gone while /healthz
// still answers 200 (a process manager must not restart it), and
// promotes the standby. It returns when the promotion was done.
func (r *replicatedPair) failOver(t *testing.T, p *proc, base string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, r.primary.Kill(ctx))
	var reason string
	waitFor(t, p, time.Minute, "/readyz reporting the primary gone", func() bool {
		code, body, err := readyz(base)
		reason = body["reason"]
		return err == nil && code == 503
	})
	t.Logf("/readyz with the primary gone: 503 %q", reason)
	require.Contains(t, reason, "database: ")
	code, body := doHTTP(t, "GET", base+"/healthz", nil, "", "")
	require.Equal(t, 200, code, "a process manager must not restart the runner for a failover: %s", body)

	require.NoError(t, r.standby.Promote(ctx))
	promoted := time.Now()
	// The test's connections to the dead primary are gone too.
	r.pool.Reset()
	waitFor(t, p, time.Minute, "/readyz 200 after the promotion", func() bool {
		code, _, err := readyz(base)
		return err == nil && code == 200
	})
	t.Logf("/readyz 200 %s after the promotion", time.Since(promoted).Round(time.Millisecond))
	return promoted
}

// requireAlive fails the test if the runner exited: it must live through
// a failover without a restart.
func requireAlive(t *testing.T, p *proc) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("wasso-runner exited (code %d): it needed a restart", p.code)
	default:
	}
}

// failoverSettleWithin is how late, after its deadline or after the
// promotion (whichever is later), an event may be settled through a
// failover.
const failoverSettleWithin = 5 * time.Second

// TestPrimaryFailover: a runner is given the multi-host URL of a primary
// and its streaming standby. The primary is SIGKILLed while events come
// due, some scheduled through the API and some written as the Django
// backend does, and the standby is promoted. Without a restart, the
// runner reports the outage on /readyz and then recovery, settles every
// event due after the kill within 5 s of its deadline or of the
// promotion, whichever is later, and leaves no duplicate row, no event
// settled twice and no sweep slot enqueued twice.
func TestPrimaryFailover(t *testing.T) {
	t.Parallel()
	r := startReplicatedPair(t)
	e := newEventDB(t, r.pool, "")
	p, base := startOutageRunner(t, r.url, "")
	p.waitLog(t, "deadline discovery started", time.Minute)

	before := e.mustEvent(t, e.dbNow(t).Add(time.Second), true)
	e.waitSettled(t, p, []int64{before}, time.Minute)

	// Events due from 4 s on, one every 1.5 s: the first ones during the
	// outage, the others after the promotion. They and their plans reach
	// the standby before the kill; what the runner does with them
	// afterwards may not.
	now := e.dbNow(t)
	var (
		ids       []int64
		deadlines = map[int64]time.Time{}
	)
	for i := range 8 {
		deadline := now.Add(4*time.Second + time.Duration(i)*1500*time.Millisecond)
		id := e.mustEvent(t, deadline, i%2 == 0)
		ids = append(ids, id)
		deadlines[id] = deadline
	}
	waitFor(t, p, time.Minute, "the events planned", func() bool {
		n, err := queryInt(r.pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND (args->>'event_id')::bigint = ANY($2)`, attendance.SettleEventKind, ids)
		return err == nil && n == len(ids)
	})
	r.catchUp(t)

	promoted := r.failOver(t, p, base)
	e.waitSettled(t, p, ids, time.Minute)
	requireAlive(t, p)

	rows, err := r.pool.Query(context.Background(), `SELECT event_id, settled_at FROM wasso_settlement WHERE event_id = ANY($1)`, ids)
	require.NoError(t, err)
	settledAt := map[int64]time.Time{}
	var (
		id int64
		at time.Time
	)
	for rows.Next() {
		require.NoError(t, rows.Scan(&id, &at))
		settledAt[id] = at
	}
	require.NoError(t, rows.Err())
	var worst time.Duration
	for _, id := range ids {
		late := settledAt[id].Sub(later(deadlines[id], promoted))
		worst = max(worst, late)
		require.LessOrEqual(t, late, failoverSettleWithin,
			"event %d (deadline %s, promotion %s) settled at %s", id, deadlines[id], promoted, settledAt[id])
	}
	t.Logf("latest settlement after its deadline or the promotion: %s", worst.Round(time.Millisecond))

	waitJobsDone(t, r.pool, p)
	stopRunner(t, p)
	requireSettledOnce(t, r.pool, append(ids, before), false)
}

// TestFailoverLostCommitsRepaired builds the loss asynchronous
// replication allows: the standby stops receiving WAL while a settlement
// job is running, the primary then completes that job, settles events,
// records sweep slots and completes their jobs, and is SIGKILLed; the
// standby, which has none of it, is promoted. The runner, not restarted,
// repairs it: every event is settled once on the new primary, each sweep
// slot has one job, and the job the new primary still shows running,
// though its runner finished it, is given back (an abandoned job) and
// completed.
func TestFailoverLostCommitsRepaired(t *testing.T) {
	t.Parallel()
	r := startReplicatedPair(t)
	e := newEventDB(t, r.pool, "")
	p, base := startOutageRunner(t, r.url, "")
	p.waitLog(t, "deadline discovery started", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A settlement running when replication stops: its job waits for a
	// lock the test holds on attendances.
	held := e.mustEvent(t, e.dbNow(t).Add(time.Second), true)
	now := e.dbNow(t)
	var ids []int64
	for i := range 4 {
		ids = append(ids, e.mustEvent(t, now.Add(4*time.Second+time.Duration(i)*time.Second), i%2 == 0))
	}
	lock, err := r.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = lock.Exec(ctx, `LOCK TABLE attendances IN EXCLUSIVE MODE`)
	require.NoError(t, err)
	waitFor(t, p, time.Minute, "the held event's settlement running, waiting for the test's lock", func() bool {
		n, err := queryInt(r.pool, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'attendances'::regclass`)
		return err == nil && n > 0
	})
	var heldJob int64
	require.NoError(t, r.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = $1 AND state = 'running' AND (args->>'event_id')::bigint = $2`,
		attendance.SettleEventKind, held).Scan(&heldJob))
	waitFor(t, p, time.Minute, "the events planned", func() bool {
		n, err := queryInt(r.pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND (args->>'event_id')::bigint = ANY($2)`, attendance.SettleEventKind, ids)
		return err == nil && n == len(ids)
	})
	r.catchUp(t)
	require.NoError(t, r.standby.StopReceiving(ctx))
	detached := e.dbNow(t)
	require.NoError(t, lock.Rollback(ctx))

	// On the primary alone: the held job completed, the events settled,
	// sweeps enqueued for new slots and completed.
	ids = append(ids, held)
	e.waitSettled(t, p, ids, time.Minute)
	waitFor(t, p, time.Minute, "the held job completed and two sweep slots after the standby stopped receiving", func() bool {
		n, err := queryInt(r.pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed' AND (metadata->>'slot')::timestamptz > $2`, attendance.SweepKind, detached)
		done, err2 := queryInt(r.pool, `SELECT count(*) FROM river_job WHERE id = $1 AND state = 'completed'`, heldJob)
		return err == nil && err2 == nil && n >= 2 && done == 1
	})
	lostSweeps, err := queryInt(r.pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND (metadata->>'slot')::timestamptz > $2`, attendance.SweepKind, detached)
	require.NoError(t, err)

	promoted := r.failOver(t, p, base)
	state, err := queryInt(r.pool, `SELECT count(*) FROM river_job WHERE id = $1 AND state = 'running'`, heldJob)
	require.NoError(t, err)
	require.Equal(t, 1, state, "job %d, completed on the lost primary, is running on the new one", heldJob)

	e.waitSettled(t, p, ids, time.Minute)
	requireAlive(t, p)
	// The loss was real: the settlements the primary made are gone, and
	// the runner made them again after the promotion.
	redone, err := queryInt(r.pool, `SELECT count(*) FROM wasso_settlement WHERE event_id = ANY($1) AND settled_at >= $2`, ids, promoted)
	require.NoError(t, err)
	t.Logf("the primary settled %d events and enqueued %d sweeps the standby never received; %d settlements were made again after the promotion", len(ids), lostSweeps, redone)
	require.Equal(t, len(ids), redone, "settlements made after the promotion")

	// The abandoned job comes back and completes.
	line := p.waitLog(t, "abandoned job rescued: running in the database, not on its runner", time.Minute)
	require.EqualValues(t, heldJob, line["job_id"])
	t.Logf("job %d given back %s after the promotion", heldJob, time.Since(promoted).Round(time.Second))
	waitJobsDone(t, r.pool, p)
	stopRunner(t, p)
	requireSettledOnce(t, r.pool, ids, false)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
