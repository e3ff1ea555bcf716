package runner_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

type jobRow struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"`
	Queue string `json:"queue"`
	State string `json:"state"`
}

func listJobs(t *testing.T, db *wassotest.DB, extra ...string) []jobRow {
	t.Helper()
	res := runCLI(t, cliOpts{}, args([]string{"jobs", "list", "--json"}, dbArgs(db), extra)...)
	require.Equal(t, 0, res.code, res.String())
	var out []jobRow
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
	return out
}

func ids(jobs []jobRow) []int64 {
	var out []int64
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

// insertJobs inserts test.noop jobs: n available on queue "default", n
// scheduled an hour ahead on queue "mail".
func insertJobs(t *testing.T, db *wassotest.DB, n int) {
	t.Helper()
	client := controlClient(t, db)
	for i := range n {
		_, err := client.Insert(context.Background(), noopArgs{N: i}, nil)
		require.NoError(t, err)
		_, err = client.Insert(context.Background(), noopArgs{N: i}, &river.InsertOpts{Queue: "mail", ScheduledAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
	}
}

// TestJobsListCancelRetryDelete: list filters by kind, queue and state;
// cancel, retry and delete act on IDs or, confirmed, on filters.
func TestJobsListCancelRetryDelete(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	insertJobs(t, db, 3)
	_, err := controlClient(t, db).Insert(context.Background(), noopOther{}, nil)
	require.NoError(t, err)

	require.Len(t, listJobs(t, db), 7)
	require.Len(t, listJobs(t, db, "--kind", "test.noop"), 6)
	require.Len(t, listJobs(t, db, "--queue", "mail"), 3)
	require.Len(t, listJobs(t, db, "--state", "scheduled"), 3)
	require.Len(t, listJobs(t, db, "--kind", "test.noop", "--queue", "default", "--state", "available"), 3)
	require.Len(t, listJobs(t, db, "--limit", "2"), 2)

	res := runCLI(t, cliOpts{}, args([]string{"jobs", "list"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "ID")
	require.Contains(t, res.stdout, "test.noop")
	require.Contains(t, res.stdout, "scheduled")

	res = runCLI(t, cliOpts{}, args([]string{"jobs", "list", "--state", "bogus"}, dbArgs(db))...)
	require.Equal(t, 2, res.code, res.String())
	require.Contains(t, res.stderr, "--state")

	mail := ids(listJobs(t, db, "--queue", "mail"))

	// Cancel by ID.
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "cancel", strconv.FormatInt(mail[0], 10)}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "cancelled job "+strconv.FormatInt(mail[0], 10))
	require.Equal(t, "cancelled", listJobs(t, db, "--state", "cancelled")[0].State)

	// Retry makes it available again.
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "retry", strconv.FormatInt(mail[0], 10)}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Empty(t, listJobs(t, db, "--state", "cancelled"))
	require.Len(t, listJobs(t, db, "--queue", "mail", "--state", "available"), 1)

	// Delete by ID; a missing ID fails after the others are done.
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "delete", strconv.FormatInt(mail[1], 10), "999999"}, dbArgs(db))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, res.stdout, "deleted job "+strconv.FormatInt(mail[1], 10))
	require.Contains(t, res.stderr, "no such job: 999999")
	require.Len(t, listJobs(t, db, "--queue", "mail"), 2)

	// By filter: refused without a terminal, done with --yes.
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "cancel", "--kind", "test.other"}, dbArgs(db))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, res.stderr, "pass --yes")
	require.Contains(t, oneLine(t, res.stderr), "Cancel 1 jobs (kind=test.other)?", "the question counts the jobs the filter selects")
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "cancel", "--kind", "test.other", "--yes", "--json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Equal(t, "cancelled", listJobs(t, db, "--kind", "test.other")[0].State)

	// IDs and filters do not mix; one of them is needed.
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "delete"}, dbArgs(db))...)
	require.Equal(t, 2, res.code, res.String())
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "delete", "1", "--kind", "x"}, dbArgs(db))...)
	require.Equal(t, 2, res.code, res.String())
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "retry", "abc"}, dbArgs(db))...)
	require.Equal(t, 2, res.code, res.String())
}

type noopOther struct{}

func (noopOther) Kind() string { return "test.other" }

// TestJobsPurge: purge deletes waiting jobs only after confirmation: it
// refuses without --yes when stdin is not a terminal, refuses on a
// terminal answered "n" or not at all, purges on "y", and never deletes
// finalized jobs unless asked with --state.
func TestJobsPurge(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	insertJobs(t, db, 2)
	completed := listJobs(t, db, "--queue", "default")[0].ID
	_, err := db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1`, completed)
	require.NoError(t, err)

	// Piped input is not a terminal: refused, whatever it says.
	res := runCLI(t, cliOpts{stdin: strings.NewReader("y\n")}, args([]string{"jobs", "purge"}, dbArgs(db))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, oneLine(t, res.stderr), "stdin is not a terminal")
	require.Len(t, listJobs(t, db), 4)

	if _, err := exec.LookPath("script"); err == nil {
		// script(1) gives the process a terminal, fed from our stdin.
		for _, answer := range []string{"n\n", "\n"} {
			res = runInTerminal(t, answer, args([]string{"jobs", "purge", "--queue", "mail"}, dbArgs(db))...)
			require.Equal(t, 1, res.code, res.String())
			require.Contains(t, res.stdout, "Delete 2 jobs")
			require.Contains(t, res.stdout, "not confirmed")
			require.Len(t, listJobs(t, db, "--queue", "mail"), 2)
		}
		res = runInTerminal(t, "y\n", args([]string{"jobs", "purge", "--queue", "mail"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stdout, "purged 2 jobs")
		require.Empty(t, listJobs(t, db, "--queue", "mail"))
	} else {
		t.Log("script(1) not found: the interactive confirmation is not exercised")
		res = runCLI(t, cliOpts{}, args([]string{"jobs", "purge", "--queue", "mail", "--yes"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
	}

	res = runCLI(t, cliOpts{}, args([]string{"jobs", "purge", "--yes"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "purged 1 jobs")
	remaining := listJobs(t, db)
	require.Len(t, remaining, 1, "the completed job is history, not waiting")
	require.Equal(t, completed, remaining[0].ID)

	res = runCLI(t, cliOpts{}, args([]string{"jobs", "purge", "--yes", "--state", "completed", "--json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.JSONEq(t, `{"deleted": 1}`, res.stdout)
	require.Empty(t, listJobs(t, db))
}

// runInTerminal runs the binary under script(1), which gives it a
// pseudo-terminal fed from input; script merges stdout and stderr, and
// the exit code is checked through the output.
func runInTerminal(t *testing.T, input string, a ...string) result {
	t.Helper()
	reserveConns(t, defaultTestConns)
	// As runCLI does, run it again while the server refuses it a
	// connection because all of them are taken.
	deadline := time.Now().Add(2 * time.Minute)
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		res := runInTerminalOnce(t, input, a...)
		if res.code == 0 || !refusedConnection(res.stdout) || time.Now().After(deadline) {
			return res
		}
		t.Logf("%v: the server had no connection left (SQLSTATE 53300); running it again", a)
		time.Sleep(pause)
	}
}

func runInTerminalOnce(t *testing.T, input string, a ...string) result {
	t.Helper()
	quoted := make([]string, len(a))
	for i, s := range a {
		quoted[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	command := "'" + binPath + "' " + strings.Join(quoted, " ")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-q", "-e", "-c", command, "/dev/null")
	cmd.Env = baseEnv()
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	res := result{stdout: string(out)}
	if exitErr, ok := err.(*exec.ExitError); ok {
		res.code = exitErr.ExitCode()
	}
	return res
}

// TestJobsCancelRunning: cancelling a job that a runner is working tells
// that runner, through Postgres, to cancel the job's context; the job ends
// cancelled and the runner carries on.
func TestJobsCancelRunning(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	_, release := blockedSweep(t, db)
	p := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", "1h")
	jobID := waitSweepBlocked(t, db)

	res := runCLI(t, cliOpts{}, args([]string{"jobs", "cancel", strconv.FormatInt(jobID, 10)}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "cancelling job "+strconv.FormatInt(jobID, 10))
	require.Eventually(t, func() bool { return jobState(t, db, jobID) == "cancelled" }, time.Minute, 100*time.Millisecond)
	release()

	// Finalized jobs are not cancelled again.
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "cancel", strconv.FormatInt(jobID, 10)}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "skipped job "+strconv.FormatInt(jobID, 10)+": it is cancelled")

	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
}
