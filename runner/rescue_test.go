package runner_test

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

// TestLostRunnerJobsRescued: two runners each work a slow job of a queue
// of their own; the one that is not the leader is killed with SIGKILL.
// Once its heartbeat is RunnerLostAfter old, the leader's rescuer makes
// its job available again, with an error naming the lost runner, long
// before run.rescue_after (an hour here, so River's rescuer cannot be the
// one); the live runner's job, slower than the whole test, is never
// touched. The time from the kill to the rescue is logged.
func TestLostRunnerJobsRescued(t *testing.T) {
	t.Parallel()
	reserveConns(t, 12)
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	opts := cliOpts{bin: faultBinary(t), env: []string{"WASSO_RUN_JOB_TIMEOUT=30m", "WASSO_RUN_RESCUE_AFTER=1h"}}

	leader := startRunner(t, db, opts, "--no-http", "--no-periodic", "--no-deadlines", "--queues", "live=1", "--shutdown-timeout", "1s")
	leaderID, _ := leader.waitLog(t, "wasso-runner started", time.Minute)["client_id"].(string)
	waitFor(t, leader, time.Minute, "the first runner to lead", func() bool {
		return countNoFail(db, `SELECT count(*) FROM river_leader WHERE leader_id = $1`, leaderID) == 1
	})
	doomed := startRunner(t, db, opts, "--no-http", "--no-periodic", "--no-deadlines", "--queues", "doomed=1")
	doomedID, _ := doomed.waitLog(t, "wasso-runner started", time.Minute)["client_id"].(string)

	client := controlClient(t, db)
	sleepArgs, err := json.Marshal(map[string]int{"ms": int(time.Hour / time.Millisecond)})
	require.NoError(t, err)
	insert := func(queue string) int64 {
		var res []*rivertype.JobInsertResult
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			var err error
			res, err = client.InsertManyTx(ctx, tx, []river.InsertManyParams{{
				Args: rawArgs{kind: "test.sleep", args: sleepArgs}, InsertOpts: &river.InsertOpts{Queue: queue},
			}})
			return err
		}))
		return res[0].Job.ID
	}
	liveJob, doomedJob := insert("live"), insert("doomed")
	for id, by := range map[int64]string{liveJob: leaderID, doomedJob: doomedID} {
		waitFor(t, leader, time.Minute, "the jobs to run", func() bool {
			j := faultJob(client, id)
			return j != nil && j.State == rivertype.JobStateRunning && len(j.AttemptedBy) == 1 && j.AttemptedBy[0] == by
		})
	}

	doomed.signal(t, syscall.SIGKILL)
	killedAt := time.Now()
	require.Equal(t, -1, doomed.wait(t, time.Minute), "killed by a signal")
	waitFor(t, leader, 2*time.Minute, "the lost runner's job made available again", func() bool {
		return jobState(t, db, doomedJob) == string(rivertype.JobStateAvailable)
	})
	t.Logf("SIGKILL -> job available again: %s (heartbeat every 5s, lost after 20s, rescuer every 5s)", time.Since(killedAt).Round(100*time.Millisecond))

	rescued := faultJob(client, doomedJob)
	require.NotNil(t, rescued)
	require.Equal(t, 1, rescued.Attempt, "the attempt is counted again when a runner fetches it")
	require.Len(t, rescued.Errors, 1)
	require.Equal(t, 1, rescued.Errors[0].Attempt)
	require.True(t, strings.HasPrefix(rescued.Errors[0].Error, "Job of a lost runner rescued: no heartbeat from "+doomedID), rescued.Errors[0].Error)
	line := leader.waitLog(t, "job of a lost runner rescued", time.Minute)
	require.EqualValues(t, doomedJob, line["job_id"])
	require.Equal(t, doomedID, line["lost_client_id"])

	// The pass that rescued it saw the live runner's job too, running far
	// longer: untouched.
	live := faultJob(client, liveJob)
	require.NotNil(t, live)
	require.Equal(t, rivertype.JobStateRunning, live.State)
	require.Equal(t, 1, live.Attempt)
	require.Empty(t, live.Errors)
	require.Equal(t, []string{leaderID}, live.AttemptedBy)

	leader.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, leader.wait(t, time.Minute))
}

// rawArgs are job args given as JSON, of any kind.
type rawArgs struct {
	kind string
	args json.RawMessage
}

func (a rawArgs) Kind() string                 { return a.kind }
func (a rawArgs) MarshalJSON() ([]byte, error) { return a.args, nil }
