package runner_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// badInput is one case of TestBadInput: one bad thing given to the runner,
// and what must come of it.
type badInput struct {
	name string

	// A command line, run to completion against the test's database
	// (whose flags are put first unless noDB: the case is about the
	// database settings themselves), with env added to the environment
	// and file written to wasso-runner.yaml in its working directory.
	cmd  []string
	env  []string
	file string
	noDB bool
	// code is the exit code the command must end with.
	code int

	// Or a job inserted into river_job by hand, with args as jsonb text,
	// for the runner started after the command lines to work.
	kind  string
	args  string
	queue string
	// state is the state the job must end in.
	state string

	// Or rows written before that runner starts: an event and its
	// roster. seed returns the event.
	seed func(t *testing.T) int64

	// want are in the command's stderr, in the job's error, or (seed) in
	// the runner's warning about the event; for seed, want[0] is the
	// warning's kind.
	want []string
	// check, if set, asserts what the case must have written or left as
	// it was, beyond what every case of its sort checks.
	check func(t *testing.T, r badInputResult)
}

// badInputResult is what a case produced.
type badInputResult struct {
	res   result // command line
	job   handJob
	event int64 // seed
}

// handJob is a job of river_job as a hand-inserted case left it.
type handJob struct {
	ID          int64
	State       string
	Attempt     int
	MaxAttempts int
	Errors      []string
	Finalized   bool
}

// secretPassword is in every database URL of the cases: no output may
// ever show it.
const secretPassword = "S3cret-Pw-do-not-print"

// TestBadInput feeds the runner bad input of every sort: configuration,
// command lines, job args and Django rows. For each case it checks a
// message that names the problem, an exit code or a job state, and that
// nothing is lost: a refused command leaves the database exactly as it
// was, a job whose args do not fit its kind is cancelled at its first
// attempt (not retried 25 times) without holding up the other jobs, and
// odd rows are settled by the rules as they stand or left alone, with a
// warning, while the runner keeps running. The README's bad-input table
// lists the cases.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	now := dbNow(t, db)
	club, dueEvent := dueClub(t, db, 3)
	// A job no runner works, on a queue the runner does not work: every
	// case must leave it as it is.
	bystander, err := controlClient(t, db).Insert(ctx, noopArgs{N: 1}, &river.InsertOpts{Queue: "elsewhere"})
	require.NoError(t, err)

	// A server that accepts connections and never answers, the way a
	// firewall that drops packets or a hung server looks to a client.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	// The test server trusts connections from 127.0.0.1 (pg_hba.conf
	// trust), so no password is ever checked: a role that does not exist
	// is the login failure it can produce.
	server, err := url.Parse(wassotest.ServerURL(t))
	require.NoError(t, err)
	unknownRole := *server
	unknownRole.User = url.UserPassword("wasso_no_such_role", secretPassword)
	unknownDB := *server
	unknownDB.User = url.UserPassword(server.User.Username(), secretPassword)
	unknownDB.Path = "/wasso_no_such_database"

	cases := []badInput{
		// Configuration: exit 2, the key and where its value came from.
		{name: "config/unknown key", cmd: []string{"run"}, file: "sweep:\n  intervl: 5m\n", code: 2,
			want: []string{"sweep.intervl (config file ", "unknown key"}},
		{name: "config/wrong type", cmd: []string{"run"}, file: "run:\n  concurrency: four\n", code: 2,
			want: []string{"run.concurrency (config file ", `"four" is not an integer`}},
		{name: "config/wrong type env", cmd: []string{"run"}, env: []string{"WASSO_HTTP_READ_ONLY=maybe"}, code: 2,
			want: []string{"http.read_only (env WASSO_HTTP_READ_ONLY)", "is not a boolean"}},
		{name: "config/zero duration", cmd: []string{"run"}, env: []string{"WASSO_DATABASE_CONNECT_TIMEOUT=0s"}, code: 2,
			want: []string{"database.connect_timeout (env WASSO_DATABASE_CONNECT_TIMEOUT): 0s: must be positive"}},
		{name: "config/zero sweep interval", cmd: []string{"run", "--sweep-interval", "0s"}, code: 2,
			want: []string{"sweep.interval (flag --sweep-interval): 0s: must be at least 1s"}},
		{name: "config/negative duration", cmd: []string{"run", "--shutdown-timeout=-5s"}, code: 2,
			want: []string{"run.shutdown_timeout (flag --shutdown-timeout): -5s: must be positive"}},
		{name: "config/negative duration in file", cmd: []string{"run"}, file: "deadlines:\n  discovery_interval: -1m\n", code: 2,
			want: []string{"deadlines.discovery_interval (config file ", "-1m0s: must be positive"}},
		{name: "config/negative lookback refuses to sweep", cmd: []string{"sweep", "--lookback=-1h"}, code: 2,
			want: []string{"sweep.lookback (flag --lookback): -1h0m0s: must be positive"}},
		{name: "config/duration without unit", cmd: []string{"sweep"}, env: []string{"WASSO_SWEEP_LOOKBACK=86400"}, code: 2,
			want: []string{"sweep.lookback (env WASSO_SWEEP_LOOKBACK)", "is not a duration"}},
		{name: "config/malformed database url", noDB: true, code: 2,
			cmd:  []string{"run", "--database-url", "postgres://wasso:" + secretPassword + "@127.0.0.1:notaport/wasso"},
			want: []string{"database_url (flag --database-url): cannot parse", "invalid port"}},
		{name: "config/database url not a url", noDB: true, code: 2, cmd: []string{"jobs", "list"},
			env:  []string{"DATABASE_URL=host=127.0.0.1 password=" + secretPassword + " port"},
			want: []string{"database_url (env DATABASE_URL): cannot parse"}},
		{name: "config/malformed webhook url", cmd: []string{"run"}, code: 2,
			env:  []string{"WASSO_NOTIFY_WEBHOOK_URL=https://[::1/hook?token=" + secretPassword, "WASSO_NOTIFY_WEBHOOK_SECRET=s3cr3t-value"},
			want: []string{"notify.webhook.url (env WASSO_NOTIFY_WEBHOOK_URL)", "webhook URL does not parse"}},
		{name: "config/webhook url without host", cmd: []string{"run"}, code: 2,
			env:  []string{"WASSO_NOTIFY_WEBHOOK_URL=https:///hook", "WASSO_NOTIFY_WEBHOOK_SECRET=s3cr3t-value"},
			want: []string{"notify.webhook.url (env WASSO_NOTIFY_WEBHOOK_URL)", "must be an http or https URL"}},

		// The database: exit 2, what failed, never the password.
		{name: "database/closed port", noDB: true, code: 2,
			cmd:  []string{"run", "--database-url", "postgres://wasso:" + secretPassword + "@127.0.0.1:1/wasso?sslmode=disable"},
			want: []string{"database unreachable (wasso@127.0.0.1:1/wasso)", "connection refused"}},
		{name: "database/server never answers", noDB: true, code: 2,
			cmd:  []string{"run", "--database-url", "postgres://wasso:" + secretPassword + "@" + silent.Addr().String() + "/wasso"},
			env:  []string{"WASSO_DATABASE_CONNECT_TIMEOUT=1s"},
			want: []string{"database unreachable (wasso@" + silent.Addr().String() + "/wasso)", "no answer within the connect timeout, 1s"}},
		{name: "database/unknown role", noDB: true, code: 2,
			cmd:  []string{"sweep", "--database-url", unknownRole.String()},
			want: []string{"database refused the login (wasso_no_such_role@", `role "wasso_no_such_role" does not exist`, "check the user and password"}},
		{name: "database/unknown database", noDB: true, code: 2,
			cmd:  []string{"jobs", "list", "--database-url", unknownDB.String()},
			want: []string{"database does not exist (", `database "wasso_no_such_database" does not exist`}},

		// The command line: exit 2 for usage, 1 for a command that ran
		// and failed.
		{name: "cli/unknown command", cmd: []string{"frobnicate"}, code: 2, want: []string{`unknown command "frobnicate"`}},
		{name: "cli/unknown subcommand", cmd: []string{"jobs", "frobnicate"}, code: 2, want: []string{`unknown command "frobnicate" for wasso-runner jobs`}},
		{name: "cli/unknown flag", cmd: []string{"sweep", "--bogus"}, code: 2, want: []string{"unknown flag: --bogus", "see wasso-runner sweep --help"}},
		{name: "cli/flag without value", cmd: []string{"run", "--concurrency"}, code: 2, want: []string{"flag needs an argument: --concurrency"}},
		{name: "cli/missing arguments", cmd: []string{"jobs", "cancel"}, code: 2, want: []string{"wasso-runner jobs cancel needs job IDs"}},
		{name: "cli/missing subcommand", cmd: []string{"migrate"}, code: 2, want: []string{"wasso-runner migrate needs a subcommand"}},
		{name: "cli/argument not an id", cmd: []string{"jobs", "retry", "abc"}, code: 2, want: []string{`"abc" is not a job ID`}},
		{name: "cli/extra argument", cmd: []string{"sweep", "now"}, code: 2, want: []string{"wasso-runner sweep takes no arguments"}},
		{name: "cli/flags that exclude each other", cmd: []string{"sweep", "--dry-run", "--enqueue"}, code: 2, want: []string{"--dry-run and --enqueue do not go together"}},
		{name: "cli/cancel unknown job", cmd: []string{"jobs", "cancel", "987654321"}, code: 1, want: []string{"no such job: 987654321"}},
		{name: "cli/purge without confirmation", cmd: []string{"jobs", "purge"}, code: 1, want: []string{"stdin is not a terminal", "pass --yes"}},

		// Job args that do not fit the kind: cancelled at the first
		// attempt with the reason; unknown fields are ignored.
		{name: "job/sweep field of the wrong type", kind: attendance.SweepKind, args: `{"lookback": "soon"}`, state: "cancelled",
			want: []string{`attendance.sweep job args {"lookback": "soon"} do not fit the kind: field "lookback" is a JSON string, want an integer (nanoseconds)`}},
		{name: "job/sweep args a string", kind: attendance.SweepKind, args: `"a string"`, state: "cancelled",
			want: []string{`attendance.sweep job args "a string" do not fit the kind: args must be a JSON object`}},
		{name: "job/sweep args an array", kind: attendance.SweepKind, args: `[1]`, state: "cancelled",
			want: []string{"args must be a JSON object"}},
		{name: "job/sweep args null", kind: attendance.SweepKind, args: `null`, state: "cancelled",
			want: []string{"args must be a JSON object"}},
		{name: "job/sweep negative lookback", kind: attendance.SweepKind, args: `{"lookback": -3600000000000}`, state: "cancelled",
			want: []string{"lookback -1h0m0s must not be negative"}},
		{name: "job/sweep unknown field", kind: attendance.SweepKind, args: `{"event_ids": "x"}`, state: "completed"},
		{name: "job/settle_event id not a number", kind: attendance.SettleEventKind, queue: attendance.QueueExact, state: "cancelled",
			args: `{"event_id": "x", "deadline": "2026-01-01T00:00:00Z"}`,
			want: []string{`field "event_id" is a JSON string, want an integer`}},
		{name: "job/settle_event deadline not a time", kind: attendance.SettleEventKind, queue: attendance.QueueExact, state: "cancelled",
			args: fmt.Sprintf(`{"event_id": %d, "deadline": "yesterday"}`, dueEvent),
			want: []string{"attendance.settle_event job args", `cannot parse "yesterday`}},
		{name: "job/settle_event no event", kind: attendance.SettleEventKind, queue: attendance.QueueExact, state: "cancelled",
			args: `{}`, want: []string{"event id 0 must be positive"}},
		{name: "job/settle_event event that does not exist", kind: attendance.SettleEventKind, queue: attendance.QueueExact, state: "completed",
			args: `{"event_id": 987654321, "deadline": "2026-01-01T00:00:00Z"}`},
		{name: "job/notify_absent members not a list", kind: attendance.NotifyAbsentKind, state: "cancelled",
			args: fmt.Sprintf(`{"event_id": %d, "mapping_ids": "%d,%d"}`, dueEvent, club.MappingIDs[0], club.MappingIDs[1]),
			want: []string{`field "mapping_ids" is a JSON string, want an array of integers`}},
		{name: "job/notify_absent no members", kind: attendance.NotifyAbsentKind, state: "cancelled",
			args: fmt.Sprintf(`{"event_id": %d, "mapping_ids": []}`, dueEvent),
			want: []string{"attendance.notify_absent has no mapping_ids"}},
		{name: "job/notify_absent no event", kind: attendance.NotifyAbsentKind, state: "cancelled",
			args: `{"mapping_ids": [1]}`, want: []string{"attendance.notify_absent event id 0 must be positive"}},

		// Django rows the settlement meets: settled by the rules as they
		// stand, or left alone, with a warning naming the event.
		{name: "rows/negative fail_minutes", want: []string{attendance.AnomalyDeadlineBeforeStart, "fail_minutes is -30"},
			seed: func(t *testing.T) int64 {
				c, err := seed.CreateClub(ctx, db.Pool, "Negative fail_minutes", 2, now.Add(-48*time.Hour))
				require.NoError(t, err)
				// Starts in 20 minutes; deadline 30 minutes before the
				// start, so 10 minutes ago.
				id, err := seed.CreateEvent(ctx, db.Pool, seed.Event{GenerationID: c.GenerationID, Title: "Backwards",
					Start: now.Add(20 * time.Minute), StartMinutes: -10, LateMinutes: 10, FailMinutes: -30}, now.Add(-24*time.Hour))
				require.NoError(t, err)
				return id
			},
			check: func(t *testing.T, r badInputResult) {
				// Settled at its deadline, before it starts, as the rule
				// start + fail_minutes says.
				require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, r.event))
				require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement s JOIN events e ON e.id = s.event_id
					WHERE s.event_id = $1 AND s.deadline = e.start_datetime - interval '30 minutes' AND s.deadline < e.start_datetime`, r.event))
			}},
		{name: "rows/unknown attendance status", want: []string{attendance.AnomalyUnknownStatus, "unknown status [7]"},
			seed: func(t *testing.T) int64 {
				c, id := dueClubNamed(t, db, "Unknown status", 3)
				_, err := seed.AddAttendance(ctx, db.Pool, id, c.MappingIDs[0], 7, now.Add(-30*time.Minute))
				require.NoError(t, err)
				_, err = seed.AddAttendance(ctx, db.Pool, id, c.MappingIDs[1], attendance.StatusPresent, now.Add(-30*time.Minute))
				require.NoError(t, err)
				return id
			},
			check: func(t *testing.T, r badInputResult) {
				// The member with status 7 is left as they are; the one
				// without a row is marked absent; the present one stays.
				require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 7 AND NOT is_modified`, r.event))
				require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 1`, r.event))
				require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, r.event))
				require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, r.event))
			}},
		{name: "rows/generation with no members", want: []string{attendance.AnomalyNoRoster, "no current member"},
			seed: func(t *testing.T) int64 {
				_, id := dueClubNamed(t, db, "Nobody", 0)
				return id
			},
			check: func(t *testing.T, r badInputResult) {
				require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, r.event))
				require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE event_id = $1 AND updated_rows = 0 AND created_rows = 0`, r.event),
					"recorded as settled, so that no sweep looks at it again")
			}},
	}

	// Command lines first, one at a time: each must leave the database
	// exactly as it found it.
	for _, tc := range cases {
		if tc.cmd == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "wasso-runner.yaml"), []byte(tc.file), 0o600))
			}
			argv := tc.cmd
			if !tc.noDB {
				// Before the command, so that a flag left without its
				// value at the end stays so.
				argv = args(dbArgs(db), tc.cmd)
			}
			before := snapshot(t, db)
			res := runCLI(t, cliOpts{dir: dir, env: tc.env}, argv...)
			require.Equal(t, tc.code, res.code, res.String())
			msg := oneLine(t, lastLine(res.stderr))
			require.True(t, strings.HasPrefix(msg, "wasso-runner: "), msg)
			for _, w := range tc.want {
				require.Contains(t, msg, w)
			}
			require.NotContains(t, res.stdout+res.stderr, secretPassword)
			if tc.code == 2 {
				require.Empty(t, res.stdout, "nothing was done")
				require.Equal(t, msg+"\n", res.stderr, "nothing was logged")
			}
			require.Equal(t, before, snapshot(t, db), "the command changed the database")
			if tc.check != nil {
				tc.check(t, badInputResult{res: res})
			}
		})
	}

	// Then the rows and the jobs, all worked by one runner.
	events := map[string]int64{}
	due := []int64{dueEvent}
	jobIDs := map[string]int64{}
	for _, tc := range cases {
		switch {
		case tc.seed != nil:
			events[tc.name] = tc.seed(t)
			due = append(due, events[tc.name])
		case tc.kind != "":
			queue := tc.queue
			if queue == "" {
				queue = river.QueueDefault
			}
			var id int64
			require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, queue, max_attempts) VALUES ($1, $2::jsonb, $3, 25) RETURNING id`,
				tc.kind, tc.args, queue).Scan(&id))
			jobIDs[tc.name] = id
		}
	}
	p := startRunner(t, db, cliOpts{})
	warning := func(event int64, kind string) map[string]any {
		for _, line := range p.logLines() {
			if line["msg"] == "attendance event data is unusual" && line["event_id"] == float64(event) && line["kind"] == kind {
				return line
			}
		}
		return nil
	}
	// Wait until every hand-inserted job has had its attempt, every due
	// event is settled, the jobs the settlements enqueued have run, and
	// the warnings are logged.
	require.Eventually(t, func() bool {
		for _, tc := range cases {
			if tc.seed != nil && warning(events[tc.name], tc.want[0]) == nil {
				return false
			}
		}
		return countNoFail(db, `SELECT count(*) FROM river_job WHERE id = ANY($1) AND finalized_at IS NULL AND coalesce(cardinality(errors), 0) = 0`, mapValues(jobIDs)) == 0 &&
			countNoFail(db, `SELECT count(*) FROM wasso_settlement WHERE event_id = ANY($1)`, due) == len(due) &&
			countNoFail(db, `SELECT count(*) FROM river_job WHERE kind LIKE 'attendance.%' AND finalized_at IS NULL AND coalesce(cardinality(errors), 0) = 0`) == 0
	}, 2*time.Minute, 100*time.Millisecond)
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute), "the runner stops cleanly: nothing crashed it")
	for _, line := range p.logLines() {
		require.NotEqual(t, "ERROR", line["level"], "%v", line)
	}

	// Nothing lost: the event due all along is settled, its notice sent,
	// no job the runner enqueued itself failed, and the bystander is
	// untouched.
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, dueEvent))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.notify_absent' AND state = 'completed' AND (args->>'event_id')::bigint = $1`, dueEvent))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind LIKE 'attendance.%' AND NOT id = ANY($1)
		AND (state IN ('cancelled', 'discarded', 'retryable') OR coalesce(cardinality(errors), 0) > 0)`, mapValues(jobIDs)))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE id = $1 AND state = 'available' AND attempt = 0`, bystander.Job.ID))

	for _, tc := range cases {
		if tc.cmd != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			r := badInputResult{}
			switch {
			case tc.seed != nil:
				r.event = events[tc.name]
				line := warning(r.event, tc.want[0])
				require.NotNil(t, line)
				require.Equal(t, "WARN", line["level"])
				for _, w := range tc.want[1:] {
					require.Contains(t, line["detail"], w)
				}
			default:
				r.job = jobOf(t, db, jobIDs[tc.name])
				require.Equal(t, tc.state, r.job.State, "%+v", r.job)
				require.True(t, r.job.Finalized, "%+v", r.job)
				require.Equal(t, 1, r.job.Attempt, "worked once, never retried")
				if tc.state == "cancelled" {
					require.Len(t, r.job.Errors, 1)
					require.True(t, strings.HasPrefix(r.job.Errors[0], "JobCancelError: "), r.job.Errors[0])
					for _, w := range tc.want {
						require.Contains(t, r.job.Errors[0], w)
					}
				} else {
					require.Empty(t, r.job.Errors)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// snapshot sums up what a command could change: the attendance rows, the
// scheduler's bookkeeping and River's jobs, leaders and queues.
func snapshot(t *testing.T, db *wassotest.DB) string {
	t.Helper()
	var s string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `
		SELECT format('attendances=%s settlements=%s plans=%s leaders=%s queues=%s jobs=[%s]',
			(SELECT count(*) FROM attendances), (SELECT count(*) FROM wasso_settlement),
			(SELECT count(*) FROM wasso_deadline_plan), (SELECT count(*) FROM river_leader),
			(SELECT count(*) FROM river_queue),
			(SELECT coalesce(string_agg(id || ' ' || kind || ' ' || state || ' ' || attempt, ', ' ORDER BY id), '') FROM river_job))`).Scan(&s))
	return s
}

func jobOf(t *testing.T, db *wassotest.DB, id int64) handJob {
	t.Helper()
	j := handJob{ID: id}
	require.NoError(t, db.Pool.QueryRow(context.Background(), `
		SELECT state::text, attempt, max_attempts, finalized_at IS NOT NULL,
		       coalesce((SELECT array_agg(e->>'error') FROM unnest(errors) e), '{}')
		FROM river_job WHERE id = $1`, id).Scan(&j.State, &j.Attempt, &j.MaxAttempts, &j.Finalized, &j.Errors))
	return j
}

func mapValues(m map[string]int64) []int64 {
	out := make([]int64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func dbNow(t *testing.T, db *wassotest.DB) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT now()`).Scan(&now))
	return now
}

// dueClubNamed is dueClub for a second club in the same test.
func dueClubNamed(t *testing.T, db *wassotest.DB, name string, members int) (*seed.Club, int64) {
	t.Helper()
	ctx := context.Background()
	now := dbNow(t, db)
	club, err := seed.CreateClub(ctx, db.Pool, name, members, now.Add(-48*time.Hour))
	require.NoError(t, err)
	eventID, err := seed.CreateEvent(ctx, db.Pool, seed.Event{
		GenerationID: club.GenerationID, Title: name, Start: now.Add(-40 * time.Minute),
		StartMinutes: -10, LateMinutes: 10, FailMinutes: 30,
	}, now.Add(-24*time.Hour))
	require.NoError(t, err)
	return club, eventID
}
