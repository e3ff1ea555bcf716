package runner_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

// churnDuration is how long TestRunnerChurn starts and kills runners. The
// test takes a few seconds more, up to a minute more when jobs that killed
// runners left running wait for the rescuer's next pass.
const churnDuration = 3 * time.Minute

// churnRunners is how many runner processes TestRunnerChurn keeps slots
// for.
const churnRunners = 3

// churnSeedEnv names the variable that replays a TestRunnerChurn run: its
// random seed, as the test logs it.
const churnSeedEnv = "WASSO_TEST_CHURN_SEED"

// churnRescueAfter is run.rescue_after on the runners of TestRunnerChurn
// (with run.job_timeout at half of it): short, so that the test can also
// see the jobs that killed runners left running rescued and completed.
const churnRescueAfter = 10 * time.Second

// TestRunnerChurn: three runners on one database are killed (SIGKILL) and
// started again at random for churnDuration, with a sweep every two
// seconds and exact deadlines arriving throughout, several at a time:
// events written before the start and during the run, as the Django
// backend writes them (found by whichever runner leads) and through the
// API. Half the kills are aimed just after a deadline, at settlements in
// flight; the others fall anywhere, in sweeps, elections and discovery
// passes; at times no runner is left. Afterwards, with one runner left to
// finish, every event is settled exactly once: no unsettled due event, no
// member with two rows for one event, one settlement and one absent
// notice per event; and no job was doubled: at most one settle_event job
// per event and one sweep per interval slot.
//
// None of that waits for River's rescuer: a settlement cut off by a kill
// stays running in river_job until the rescuer's threshold, and the sweep
// settles its event meanwhile. Then, with run.rescue_after at ten seconds,
// the test waits for every job left running to be rescued and completed
// (nothing lost), and checks again that the retries doubled nothing.
//
// The kills and starts follow a random source whose seed is logged; set
// WASSO_TEST_CHURN_SEED to it to replay the same deadlines and sequence of
// actions (the timing of the runners themselves still varies).
func TestRunnerChurn(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("takes over three minutes")
	}
	reserveConns(t, 18) // three runners, and the test's own writes
	seedValue := uint64(time.Now().UnixNano())
	if s := os.Getenv(churnSeedEnv); s != "" {
		var err error
		seedValue, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, churnSeedEnv)
	}
	t.Logf("random seed %d (replay with %s=%d)", seedValue, churnSeedEnv, seedValue)
	rng := rand.New(rand.NewPCG(seedValue, 0))

	db := newDB(t, wassotest.Options{})
	e := newEventDB(t, db.Pool, db.Schema)
	begin := e.dbNow(t)
	end := begin.Add(churnDuration)

	// Forty deadlines from five seconds in to the end of the churn, each
	// of one to four events (meetings that end check-in at the same
	// minute). The events of every other deadline exist before any runner
	// starts; the others are written three seconds before their deadline.
	// One event in two is scheduled through the API, the others left to
	// discovery.
	instants := make([]time.Time, 40)
	for i := range instants {
		instants[i] = begin.Add(5*time.Second + time.Duration(rng.Int64N(int64(churnDuration-5*time.Second))))
	}
	slices.SortFunc(instants, time.Time.Compare)
	var (
		ids   []int64
		later []time.Time
	)
	for i, at := range instants {
		for j := range 1 + rng.IntN(4) {
			if i%2 == 0 {
				ids = append(ids, e.mustEvent(t, at, j%2 == 0))
			} else {
				later = append(later, at)
			}
		}
	}
	var (
		writerMu  sync.Mutex
		writerErr error
		written   []int64
	)
	writerCtx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i, d := range later {
			select {
			case <-writerCtx.Done():
				return
			case <-time.After(time.Until(d.Add(-3 * time.Second))):
			}
			id, err := e.newEvent(writerCtx, d, i%2 == 0)
			writerMu.Lock()
			written = append(written, id)
			writerErr = errors.Join(writerErr, err)
			writerMu.Unlock()
		}
	}()

	runners := make([]*proc, churnRunners)
	refused := 0
	env := []string{
		"WASSO_RUN_JOB_TIMEOUT=" + (churnRescueAfter / 2).String(),
		"WASSO_RUN_RESCUE_AFTER=" + churnRescueAfter.String(),
	}
	start := func(i int) {
		runners[i] = startProc(t, cliOpts{env: env}, "run", "--log-format", "json", "--no-http", "--concurrency", "2",
			"--database-url", db.URL, "--schema", db.Schema, "--sweep-interval", outageSweepInterval.String())
	}
	alive := func(i int) bool {
		if runners[i] == nil {
			return false
		}
		select {
		case <-runners[i].done:
		default:
			return true
		}
		// Only the test kills runners, and waits for them when it does:
		// one that exited by itself is a failure, unless the server
		// refused it a connection as it started because the tests running
		// alongside held them all (max_connections). A runner that cannot
		// connect at start exits, by design, for its process manager to
		// start it again.
		if out := runners[i].stderr.String(); strings.Contains(out, "SQLSTATE 53300") && !strings.Contains(out, `"msg":"wasso-runner started"`) {
			t.Logf("runner %d could not start: the server has no connection left (max_connections)", i)
			refused++
			runners[i] = nil
			return false
		}
		t.Fatalf("runner %d exited by itself (code %d)", i, runners[i].code)
		return false
	}
	kill := func(i int) {
		require.NoError(t, runners[i].cmd.Process.Kill())
		<-runners[i].done
		runners[i] = nil
	}
	for i := range runners {
		start(i)
	}
	starts, kills, aimed := churnRunners, 0, 0
	for time.Now().Before(end) {
		// Settlements start within a poll interval (500 ms) of their
		// deadline and take milliseconds: a kill aimed at them lands in
		// the 600 ms after a deadline.
		next, ok := time.Time{}, false
		for _, at := range instants {
			if at.After(time.Now().Add(500 * time.Millisecond)) {
				next, ok = at, true
				break
			}
		}
		if ok && rng.IntN(2) == 0 {
			time.Sleep(time.Until(next.Add(time.Duration(rng.IntN(600)) * time.Millisecond)))
			aimed++
		} else {
			time.Sleep(time.Duration(500+rng.IntN(4500)) * time.Millisecond)
		}
		i := rng.IntN(churnRunners)
		if alive(i) {
			kill(i)
			kills++
		} else {
			start(i)
			starts++
		}
	}
	<-writerDone
	writerMu.Lock()
	require.NoError(t, writerErr, "writing events")
	ids = append(ids, written...)
	writerMu.Unlock()

	// One runner left to finish.
	last := -1
	for i := range runners {
		switch {
		case !alive(i):
		case last < 0:
			last = i
		default:
			kill(i)
			kills++
		}
	}
	if last < 0 {
		last = 0
		start(last)
		starts++
	}
	t.Logf("%d runner starts (%d refused by the server) and %d kills (%d actions aimed just after a deadline) over %s; %d events",
		starts, refused, kills, aimed, churnDuration, len(ids))
	p := runners[last]
	// It may have been started a moment ago: SIGTERM before its signal
	// handler is set up would kill it.
	p.waitLog(t, "wasso-runner started", time.Minute)
	e.waitSettled(t, p, ids, 2*time.Minute)
	requireSettledOnce(t, db.Pool, ids, false)

	ctx := context.Background()
	var settledBy struct{ job, sweep, stuck int }
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE j.state = 'completed' AND (j.metadata->'output'->>'settled')::boolean),
		       count(*) FILTER (WHERE j.id IS NULL OR NOT coalesce((j.metadata->'output'->>'settled')::boolean, false)),
		       count(*) FILTER (WHERE j.state = 'running')
		FROM unnest($1::bigint[]) AS e(id)
		LEFT JOIN river_job j ON j.kind = 'attendance.settle_event' AND (j.args->>'event_id')::bigint = e.id`, ids).Scan(&settledBy.job, &settledBy.sweep, &settledBy.stuck))
	t.Logf("events settled by their settle_event job: %d; by a sweep (their job cut off by a kill, late, or not inserted yet): %d; settle_event jobs still running (or left running by a killed runner): %d",
		settledBy.job, settledBy.sweep, settledBy.stuck)
	var sweeps int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep'`).Scan(&sweeps))
	t.Logf("%d sweeps over %d interval slots", sweeps, int(time.Since(begin)/outageSweepInterval))

	// Nothing lost: the jobs killed runners left running are rescued once
	// they have run longer than run.rescue_after, on the leader's next
	// rescuer pass (every thirty seconds), and retried.
	rescueStart := time.Now()
	waitJobsDone(t, db.Pool, p)
	t.Logf("every job finished %s after the events were all settled", time.Since(rescueStart).Round(time.Second))
	stopRunner(t, p)
	requireSettledOnce(t, db.Pool, ids, false)
}
