package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// Tests of the schedule command, of setup's seeding and of the schedules
// in inspect and /metrics, through the binary. The scheduler loop itself
// is tested in river/ and, in runner processes, in
// schedule_process_test.go; TestScheduleCLIPropagation measures how fast
// a change made with the command reaches a running runner.

// schedRow is a schedule as schedule list --json prints it.
type schedRow struct {
	Name          string          `json:"name"`
	Kind          string          `json:"kind"`
	Args          json.RawMessage `json:"args"`
	Every         *string         `json:"every"`
	Cron          *string         `json:"cron"`
	TimeZone      string          `json:"time_zone"`
	Enabled       bool            `json:"enabled"`
	Queue         string          `json:"queue"`
	Priority      int             `json:"priority"`
	MaxAttempts   int             `json:"max_attempts"`
	StartAt       *time.Time      `json:"start_at"`
	LastRunAt     *time.Time      `json:"last_run_at"`
	NextRunAt     *time.Time      `json:"next_run_at"`
	NextRunLocal  *string         `json:"next_run_local"`
	TotalRunCount int64           `json:"total_run_count"`
	Missed        string          `json:"missed"`
	Overlap       string          `json:"overlap"`
	Description   string          `json:"description"`
	Timetable     string          `json:"timetable"`
}

// schedCLI runs wasso-runner schedule ... on db and requires exit 0.
func schedCLI(t *testing.T, db *wassotest.DB, opts cliOpts, sub ...string) result {
	t.Helper()
	res := runCLI(t, opts, args([]string{"schedule"}, sub, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	return res
}

// schedList returns the schedules by name, from schedule list --json.
func schedList(t *testing.T, db *wassotest.DB) map[string]schedRow {
	t.Helper()
	res := schedCLI(t, db, cliOpts{}, "list", "--json")
	var rows []schedRow
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rows), res.stdout)
	out := map[string]schedRow{}
	for _, r := range rows {
		out[r.Name] = r
	}
	return out
}

// schedSnapshot is everything a schedule command may write: the
// schedules, their slots, the seeding records and the jobs.
func schedSnapshot(t *testing.T, db *wassotest.DB) string {
	t.Helper()
	var s string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `
		SELECT concat_ws(E'\n',
			(SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.name), '[]')::text FROM wasso_schedule s),
			(SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.schedule_name, s.slot), '[]')::text FROM wasso_schedule_slot s),
			(SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.name), '[]')::text FROM wasso_schedule_seed s),
			(SELECT coalesce(jsonb_agg(to_jsonb(j) ORDER BY j.id), '[]')::text FROM river_job j))`).Scan(&s))
	return s
}

// TestScheduleRefused: every refused schedule command exits with its code
// and one line naming the flag (the store's field names translated) or
// the schedule, and writes nothing: the snapshot of the schedules, their
// slots, the seeding records and the jobs is the same after it. An
// unknown schedule exits 1, as jobs cancel of an unknown id does; the
// rest are usage errors, exit 2.
func TestScheduleRefused(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	res := runCLI(t, cliOpts{}, args([]string{"setup"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	schedCLI(t, db, cliOpts{}, "add", "taken", "--kind", attendance.SweepKind, "--cron", "0 9 * * *", "--tz", "Asia/Seoul")
	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)

	sweep := []string{"--kind", attendance.SweepKind}
	cases := []struct {
		name string
		cmd  []string
		code int
		want []string
	}{
		{"invalid cron: four fields", args([]string{"add", "x"}, sweep, []string{"--cron", "0 9 * *"}), 2,
			[]string{`invalid schedule "x": --cron: "0 9 * *" must have 5 fields`}},
		{"invalid cron: minute 61", args([]string{"add", "x"}, sweep, []string{"--cron", "61 * * * *"}), 2,
			[]string{`invalid schedule "x": --cron: `}},
		{"invalid cron: TZ prefix", args([]string{"add", "x"}, sweep, []string{"--cron", "CRON_TZ=Asia/Seoul 0 9 * * *"}), 2,
			[]string{"--cron: ", "set time_zone instead"}},
		{"unknown kind", []string{"add", "x", "--kind", "tasks.nope", "--every", "5m"}, 2,
			[]string{`invalid schedule "x": --kind: unknown job kind "tasks.nope"`, attendance.SweepKind}},
		{"args with an unknown field", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--args", `{"lookbak": 5}`}), 2,
			[]string{`invalid schedule "x": --args: do not fit attendance.sweep`, `unknown field "lookbak"`}},
		{"args of the wrong type", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--args", `{"lookback": "a day"}`}), 2,
			[]string{`invalid schedule "x": --args: do not fit attendance.sweep`}},
		{"args not an object", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--args", `[1, 2]`}), 2,
			[]string{`invalid schedule "x": --args: must be a JSON object`}},
		{"name taken", args([]string{"add", "taken"}, sweep, []string{"--every", "5m"}), 2,
			[]string{`schedule "taken" already exists`}},
		{"seeded name taken", args([]string{"add", "attendance-sweep"}, sweep, []string{"--every", "5m"}), 2,
			[]string{`schedule "attendance-sweep" already exists`}},
		{"unknown time zone", args([]string{"add", "x"}, sweep, []string{"--cron", "0 9 * * *", "--tz", "Mars/Olympus_Mons"}), 2,
			[]string{`invalid schedule "x": --tz "Mars/Olympus_Mons": unknown time zone`}},
		{"every 0s", args([]string{"add", "x"}, sweep, []string{"--every", "0s"}), 2,
			[]string{`invalid schedule "x": --every 0s: must be between 1s and 744h0m0s`}},
		{"every below a second", args([]string{"add", "x"}, sweep, []string{"--every", "500ms"}), 2,
			[]string{`invalid schedule "x": --every: 500ms must be between 1s`}},
		{"every without a unit", args([]string{"add", "x"}, sweep, []string{"--every", "300"}), 2,
			[]string{`invalid schedule "x": --every "300" is not a duration`}},
		{"both every and cron", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--cron", "0 9 * * *"}), 2,
			[]string{`invalid schedule "x": give --every or --cron, not both`}},
		{"neither every nor cron", args([]string{"add", "x"}, sweep), 2,
			[]string{`invalid schedule "x": give --every DURATION or --cron EXPR`}},
		{"no kind", []string{"add", "x", "--every", "5m"}, 2, []string{`invalid schedule "x": --kind is required`}},
		{"bad name", args([]string{"add", "no spaces"}, sweep, []string{"--every", "5m"}), 2,
			[]string{`invalid schedule "no spaces": NAME: "no spaces" must be 1 to 100 characters`}},
		{"no name", args([]string{"add"}, sweep, []string{"--every", "5m"}), 2, []string{"takes one schedule name"}},
		{"priority out of range", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--priority", "9"}), 2,
			[]string{`--priority: 9 must be between 1 and 4`}},
		{"unknown missed policy", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--missed", "sometimes"}), 2,
			[]string{`--missed: "sometimes" must be once, skip or all`}},
		{"start not a time", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--start", "tomorrow"}), 2,
			[]string{`--start "tomorrow": not RFC 3339`}},
		{"expires before start", args([]string{"add", "x"}, sweep, []string{"--every", "5m", "--start", "2030-01-02 00:00", "--expires", "2030-01-01 00:00"}), 2,
			[]string{`--expires: `, "is not after start_at"}},
		{"update: invalid cron", []string{"update", "taken", "--cron", "0 25 * * *"}, 2, []string{`invalid schedule "taken": --cron: `}},
		{"update: every 0s", []string{"update", "taken", "--every", "0s"}, 2, []string{`invalid schedule "taken": --every 0s`}},
		{"update: both every and cron", []string{"update", "taken", "--every", "5m", "--cron", "0 9 * * *"}, 2, []string{"give --every or --cron, not both"}},
		{"update: unknown time zone", []string{"update", "taken", "--tz", "Europe/Atlantis"}, 2, []string{`--tz "Europe/Atlantis": unknown time zone`}},
		{"update: unknown kind", []string{"update", "taken", "--kind", "tasks.nope"}, 2, []string{`--kind: unknown job kind "tasks.nope"`}},
		{"update: args that do not fit the kind", []string{"update", "taken", "--args", `{"event_id": 1}`}, 2, []string{`--args: do not fit attendance.sweep`}},
		{"update: nothing to change", []string{"update", "taken"}, 2, []string{"nothing to update"}},
		{"backfill into the future", []string{"backfill", "taken", "--from", "2025-01-01 00:00", "--to", future}, 2,
			[]string{`invalid schedule "taken": --to: `, "is in the future"}},
		{"backfill without --from", []string{"backfill", "taken"}, 2, []string{"needs --from"}},
		{"disable: note too long", []string{"disable", "taken", "--note", strings.Repeat("n", 501)}, 2,
			[]string{`invalid schedule "taken": --note: is 501 characters long, more than 500`}},
		{"disable: note on two lines", []string{"disable", "taken", "--note", "closed\nuntil April"}, 2,
			[]string{`invalid schedule "taken": --note: holds a control character (U+000A)`, "one line"}},
		{"disable: empty --by", []string{"disable", "taken", "--by", " ", "--note", "x"}, 2,
			[]string{`invalid disable of "taken": --by: must not be empty`}},
		{"disable: --by too long", []string{"disable", "taken", "--by", strings.Repeat("b", 101)}, 2,
			[]string{`invalid schedule "taken": --by: is 101 characters long, more than 100`}},
		{"enable: --note is disable's", []string{"enable", "taken", "--note", "x"}, 2, []string{"unknown flag: --note"}},
		{"show: no name", []string{"show"}, 2, []string{"takes one schedule name"}},
		{"show: two names", []string{"show", "taken", "other"}, 2, []string{"takes one schedule name, got 2"}},
		{"show: unknown schedule", []string{"show", "ghost"}, 1, []string{"no such schedule: ghost"}},
		{"disable with a note: unknown schedule", []string{"disable", "ghost", "--note", "x"}, 1, []string{"no such schedule: ghost"}},
		{"update: unknown schedule", []string{"update", "ghost", "--every", "5m"}, 1, []string{"no such schedule: ghost"}},
		{"enable: unknown schedule", []string{"enable", "ghost"}, 1, []string{"no such schedule: ghost"}},
		{"disable: unknown schedule", []string{"disable", "ghost"}, 1, []string{"no such schedule: ghost"}},
		{"remove: unknown schedule", []string{"remove", "ghost"}, 1, []string{"no such schedule: ghost"}},
		{"run-now: unknown schedule", []string{"run-now", "ghost"}, 1, []string{"no such schedule: ghost"}},
		{"backfill: unknown schedule", []string{"backfill", "ghost", "--from", "2025-01-01 00:00"}, 1, []string{"no such schedule: ghost"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := schedSnapshot(t, db)
			res := runCLI(t, cliOpts{}, args([]string{"schedule"}, tc.cmd, dbArgs(db))...)
			require.Equal(t, tc.code, res.code, res.String())
			require.Empty(t, res.stdout, res.String())
			msg := oneLine(t, res.stderr)
			require.True(t, strings.HasPrefix(msg, "wasso-runner: "), msg)
			for _, want := range tc.want {
				require.Contains(t, msg, want)
			}
			require.Equal(t, before, schedSnapshot(t, db), "a refused command wrote nothing")
		})
	}
}

// TestScheduleRoundTrip: add, list (the JSON fields and the table's local
// times), update (only the flags given change), disable, enable,
// run-now, backfill and remove, through the binary.
func TestScheduleRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	seoul, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)

	// A cron schedule read in Seoul, every field set.
	res := schedCLI(t, db, cliOpts{}, "add", "morning", "--kind", attendance.SweepKind, "--cron", "0 9 * * *", "--tz", "Asia/Seoul",
		"--args", `{"lookback": 172800000000000}`, "--queue", "default", "--priority", "2", "--max-attempts", "3",
		"--missed", "skip", "--overlap", "allow", "--description", "morning catch-up")
	require.Contains(t, res.stdout, "added schedule morning: attendance.sweep cron 0 9 * * *, Asia/Seoul, next run ")
	require.Contains(t, res.stdout, " 09:00 KST")
	// An interval schedule without --tz takes schedules.time_zone, and a
	// local --start is read in it.
	start := time.Now().In(seoul).Add(24 * time.Hour).Truncate(time.Hour)
	schedCLI(t, db, cliOpts{env: []string{"WASSO_SCHEDULES_TIME_ZONE=Asia/Seoul"}}, "add", "hourly", "--kind", attendance.SweepKind,
		"--every", "1h", "--start", start.Format("2006-01-02 15:04"), "--disabled")

	list := schedList(t, db)
	require.Len(t, list, 2)
	m := list["morning"]
	require.Equal(t, attendance.SweepKind, m.Kind)
	require.JSONEq(t, `{"lookback": 172800000000000}`, string(m.Args))
	require.Nil(t, m.Every)
	require.Equal(t, "0 9 * * *", *m.Cron)
	require.Equal(t, "Asia/Seoul", m.TimeZone)
	require.True(t, m.Enabled)
	require.Equal(t, 2, m.Priority)
	require.Equal(t, 3, m.MaxAttempts)
	require.Equal(t, "skip", m.Missed)
	require.Equal(t, "allow", m.Overlap)
	require.Nil(t, m.LastRunAt, "never run: null, not absent")
	require.Zero(t, m.TotalRunCount)
	require.NotNil(t, m.NextRunAt)
	require.Equal(t, 9, m.NextRunAt.In(seoul).Hour())
	require.Equal(t, 0, m.NextRunAt.In(seoul).Minute())
	require.True(t, m.NextRunAt.After(time.Now()))
	require.Equal(t, m.NextRunAt.In(seoul).Format("2006-01-02 15:04 MST"), *m.NextRunLocal)
	require.Equal(t, "cron 0 9 * * *", m.Timetable)
	h := list["hourly"]
	require.Equal(t, "1h0m0s", *h.Every)
	require.Nil(t, h.Cron)
	require.Equal(t, "Asia/Seoul", h.TimeZone)
	require.False(t, h.Enabled)
	require.Nil(t, h.NextRunAt, "disabled: no next run")
	require.True(t, start.Equal(*h.StartAt), "the local --start was read in Asia/Seoul: %s", h.StartAt)

	res = schedCLI(t, db, cliOpts{}, "list")
	require.Regexp(t, `(?m)^NAME\s+KIND\s+TIMETABLE\s+ZONE\s+ENABLED\s+LAST RUN\s+NEXT RUN`, res.stdout)
	require.Regexp(t, `(?m)^morning\s+attendance.sweep\s+cron 0 9 \* \* \*\s+Asia/Seoul\s+yes\s+-\s+\d{4}-\d\d-\d\d 09:00 KST`, res.stdout)
	require.Regexp(t, `(?m)^hourly\s+attendance.sweep\s+every 1h0m0s\s+Asia/Seoul\s+no\s`, res.stdout)

	// Update changes only what its flags name.
	res = schedCLI(t, db, cliOpts{}, "update", "morning", "--cron", "30 4 * * *", "--missed", "all")
	require.Contains(t, res.stdout, "updated schedule morning: attendance.sweep cron 30 4 * * *, Asia/Seoul, next run ")
	require.Contains(t, res.stdout, " 04:30 KST")
	m = schedList(t, db)["morning"]
	require.Equal(t, "30 4 * * *", *m.Cron)
	require.Equal(t, "all", m.Missed)
	require.Equal(t, 2, m.Priority, "untouched")
	require.Equal(t, "allow", m.Overlap, "untouched")
	require.JSONEq(t, `{"lookback": 172800000000000}`, string(m.Args), "untouched")
	require.Equal(t, "morning catch-up", m.Description, "untouched")
	schedCLI(t, db, cliOpts{}, "update", "morning", "--every", "2h")
	m = schedList(t, db)["morning"]
	require.Equal(t, "2h0m0s", *m.Every)
	require.Nil(t, m.Cron, "--every replaces --cron")

	// Disable, enable.
	res = schedCLI(t, db, cliOpts{}, "disable", "morning")
	require.Contains(t, res.stdout, "disabled schedule morning: ")
	m = schedList(t, db)["morning"]
	require.False(t, m.Enabled)
	require.Nil(t, m.NextRunAt)
	res = schedCLI(t, db, cliOpts{}, "enable", "hourly", "--json")
	var enabled schedRow
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &enabled), res.stdout)
	require.True(t, enabled.Enabled)
	require.True(t, start.Equal(*enabled.NextRunAt), "enabled: first slot is its start")

	// Run now, disabled or not: one job, with the schedule's args, queue
	// and metadata; the counters move, the next run does not.
	res = schedCLI(t, db, cliOpts{}, "run-now", "morning")
	require.Regexp(t, `^enqueued job \d+ of schedule morning \(slot \d{4}-`, res.stdout)
	jobID, err := strconv.ParseInt(strings.Fields(res.stdout)[2], 10, 64)
	require.NoError(t, err)
	var (
		kind, schedule string
		priority       int
		lookback       int64
	)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT kind, metadata->>'schedule', priority, (args->>'lookback')::bigint FROM river_job WHERE id = $1`, jobID).
		Scan(&kind, &schedule, &priority, &lookback))
	require.Equal(t, attendance.SweepKind, kind)
	require.Equal(t, "morning", schedule)
	require.Equal(t, 2, priority)
	require.Equal(t, int64(48*time.Hour), lookback)
	m = schedList(t, db)["morning"]
	require.EqualValues(t, 1, m.TotalRunCount)
	require.NotNil(t, m.LastRunAt)
	require.False(t, m.Enabled, "run-now does not enable")

	// Backfill: every slot of the range once, however often asked.
	anchor := time.Now().Add(-3*time.Hour - 30*time.Minute).UTC().Truncate(time.Second)
	schedCLI(t, db, cliOpts{}, "add", "catch-up", "--kind", attendance.SweepKind, "--every", "1h", "--start", anchor.Format(time.RFC3339), "--tz", "UTC")
	res = schedCLI(t, db, cliOpts{}, "backfill", "catch-up", "--from", anchor.Format(time.RFC3339), "--to", time.Now().UTC().Format(time.RFC3339))
	require.Equal(t, 4, strings.Count(res.stdout, "enqueued job "), res.stdout)
	require.Contains(t, res.stdout, "backfilled schedule catch-up from ")
	require.Contains(t, res.stdout, ": 4 jobs enqueued, 0 slots already had a job")
	require.Contains(t, res.stdout, "enqueued job ")
	require.Contains(t, res.stdout, " for slot "+anchor.Format("2006-01-02 15:04"))
	res = schedCLI(t, db, cliOpts{}, "backfill", "catch-up", "--from", anchor.Format(time.RFC3339), "--json")
	var again struct {
		Enqueued []any `json:"enqueued"`
		Skipped  int   `json:"skipped"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &again), res.stdout)
	require.Empty(t, again.Enqueued)
	require.Equal(t, 4, again.Skipped)
	require.Equal(t, 4, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE metadata->>'schedule' = 'catch-up'`))
	require.EqualValues(t, 4, schedList(t, db)["catch-up"].TotalRunCount)

	// Remove: gone, its jobs stay.
	res = schedCLI(t, db, cliOpts{}, "remove", "morning")
	require.Equal(t, "removed schedule morning (jobs already enqueued are not touched)\n", res.stdout)
	_, ok := schedList(t, db)["morning"]
	require.False(t, ok)
	require.Equal(t, "available", jobState(t, db, jobID))
}

// TestScheduleSetupSeedsOnce: setup creates attendance-sweep once; after
// that the operator's changes stand. Removed, it stays removed through
// setup and run; its interval edited, setup keeps the edit whatever
// sweep.interval says, and run logs that the stored schedule wins.
func TestScheduleSetupSeedsOnce(t *testing.T) {
	t.Parallel()
	setup := func(db *wassotest.DB, env ...string) string {
		t.Helper()
		res := runCLI(t, cliOpts{env: env}, args([]string{"setup"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		return res.stdout
	}

	// Removed: setup and run leave it removed.
	db := newDB(t, wassotest.Options{})
	require.Contains(t, setup(db), "default schedules created: attendance-sweep (every 5m0s)")
	require.Contains(t, schedList(t, db), "attendance-sweep")
	res := schedCLI(t, db, cliOpts{}, "remove", "attendance-sweep")
	require.Contains(t, res.stdout, "it is a default schedule, and setup and run will not create it again")
	out := setup(db)
	require.Contains(t, out, "default schedules left as the operator set them: attendance-sweep (removed; seeded ")
	require.Empty(t, schedList(t, db))
	// A witness schedule, due every second, shows that the runner's
	// scheduler has run: it seeds before each pass until it has seeded,
	// so once a pass has enqueued the witness's job, a seeding would have
	// been committed.
	schedCLI(t, db, cliOpts{}, "add", "witness", "--kind", attendance.SweepKind, "--every", "1s")
	p := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", "1s")
	p.waitLog(t, "the attendance-sweep schedule was removed: no periodic sweep runs (setup and run do not create it again; wasso-runner schedule add creates one)", 10*time.Second)
	waitFor(t, p, time.Minute, "a scheduler pass (the witness schedule's job)", func() bool {
		return countNoFail(db, `SELECT count(*) FROM river_job WHERE metadata->>'schedule' = 'witness'`) > 0
	})
	require.Equal(t, []string{"witness"}, slices.Collect(maps.Keys(schedList(t, db))))
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = $1 AND metadata->>'schedule' IS DISTINCT FROM 'witness'`, attendance.SweepKind), "no sweep without the schedule")

	// Edited: setup keeps the edit, run says the stored schedule wins.
	db = newDB(t, wassotest.Options{})
	setup(db, "WASSO_SWEEP_INTERVAL=10m")
	require.Equal(t, "10m0s", *schedList(t, db)["attendance-sweep"].Every)
	schedCLI(t, db, cliOpts{}, "update", "attendance-sweep", "--every", "7m")
	out = setup(db, "WASSO_SWEEP_INTERVAL=2m")
	require.Contains(t, out, "default schedules left as the operator set them: attendance-sweep (every 7m0s; seeded ")
	require.Equal(t, "7m0s", *schedList(t, db)["attendance-sweep"].Every)
	schedCLI(t, db, cliOpts{}, "disable", "attendance-sweep")
	require.Contains(t, setup(db), "attendance-sweep (every 7m0s, disabled; seeded ")
	require.False(t, schedList(t, db)["attendance-sweep"].Enabled, "setup does not enable it again")
	schedCLI(t, db, cliOpts{}, "enable", "attendance-sweep")
	p = startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", "2m")
	wins := p.waitLog(t, "the stored attendance-sweep schedule wins over sweep.interval (change it with wasso-runner schedule update)", 10*time.Second)
	require.Equal(t, "every 7m0s", wins["stored"])
	require.EqualValues(t, 2*time.Minute, wins["sweep_interval"])
	require.Equal(t, "7m0s", *schedList(t, db)["attendance-sweep"].Every)
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
	n := 0
	for _, line := range p.logLines() {
		if strings.HasPrefix(fmt.Sprint(line["msg"]), "the stored attendance-sweep schedule wins") {
			n++
		}
	}
	require.Equal(t, 1, n, "one line")
}

// TestScheduleInspectAndMetrics: inspect scheduled lists the stored
// schedules with their next run in their zone, and /metrics exports each
// schedule's runs, skips, misses and next run, from wasso_schedule.
func TestScheduleInspectAndMetrics(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	res := runCLI(t, cliOpts{}, args([]string{"setup", "--sweep-interval", "2s"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	schedCLI(t, db, cliOpts{}, "add", "nightly", "--kind", attendance.SweepKind, "--cron", "0 3 * * *", "--tz", "Asia/Seoul")

	var sched struct {
		Jobs      []any      `json:"jobs"`
		Schedules []schedRow `json:"schedules"`
	}
	inspectJSON(t, db, "scheduled", &sched)
	require.Len(t, sched.Schedules, 2)
	require.Equal(t, "attendance-sweep", sched.Schedules[0].Name)
	require.Equal(t, "every 2s", sched.Schedules[0].Timetable)
	require.Equal(t, "nightly", sched.Schedules[1].Name)
	require.NotNil(t, sched.Schedules[1].NextRunAt)
	require.True(t, strings.HasSuffix(*sched.Schedules[1].NextRunLocal, " 03:00 KST"), *sched.Schedules[1].NextRunLocal)
	out := inspectTable(t, db, "scheduled")
	require.Regexp(t, `(?m)^SCHEDULE\s+KIND\s+TIMETABLE\s+ENABLED\s+NEXT RUN\s+IN$`, out)
	require.Regexp(t, `(?m)^nightly\s+attendance.sweep\s+cron 0 3 \* \* \*\s+yes\s+\d{4}-\d\d-\d\d 03:00 KST\s+in `, out)
	require.Regexp(t, `(?m)^attendance-sweep\s+attendance.sweep\s+every 2s\s+yes\s`, out)

	p := startRunner(t, db, cliOpts{})
	base := p.baseURL(t)
	var metrics string
	require.Eventually(t, func() bool {
		code, body, err := tryHTTP("GET", base+"/metrics", nil, "", "")
		metrics = body
		return err == nil && code == http.StatusOK && metricValue(metrics, `wasso_schedule_runs_total{schedule="attendance-sweep"}`) >= 2
	}, time.Minute, 200*time.Millisecond, "the sweep schedule runs")
	for _, series := range []string{"wasso_schedule_skips_total", "wasso_schedule_misses_total", "wasso_schedule_runs_total"} {
		require.GreaterOrEqual(t, metricValue(metrics, series+`{schedule="nightly"}`), 0.0, series)
		require.GreaterOrEqual(t, metricValue(metrics, series+`{schedule="attendance-sweep"}`), 0.0, series)
	}
	next := metricValue(metrics, `wasso_schedule_next_run_timestamp_seconds{schedule="attendance-sweep"}`)
	require.InDelta(t, float64(time.Now().Unix()), next, 10, "the sweep's next slot is seconds away")
	nightly := metricValue(metrics, `wasso_schedule_next_run_timestamp_seconds{schedule="nightly"}`)
	require.Equal(t, float64(sched.Schedules[1].NextRunAt.Unix()), nightly)
	require.Equal(t, 1.0, metricValue(metrics, `wasso_schedule_enabled{schedule="nightly"}`))

	schedCLI(t, db, cliOpts{}, "disable", "nightly")
	_, metrics = doHTTP(t, "GET", base+"/metrics", nil, "", "")
	require.Equal(t, 0.0, metricValue(metrics, `wasso_schedule_next_run_timestamp_seconds{schedule="nightly"}`), "disabled: no next run")
	require.Equal(t, 0.0, metricValue(metrics, `wasso_schedule_enabled{schedule="nightly"}`))
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
}

// TestScheduleCLIPropagation measures, with a runner running the seeded
// attendance-sweep every 2 s, how fast a change made with the schedule
// command reaches it: the time from the command's exit to its first
// visible effect. Asserted bounds are generous (10 s); the figures are
// logged (the goal is under 2 s).
//
//   - disable: no sweep is enqueued once the command has exited. The
//     store's write waits for a scheduler pass holding the row, so the
//     effect is there when the command exits; the test watches three
//     slots, until two scheduler passes after them have run (a witness
//     schedule's jobs show them).
//   - enable: the next sweep's slot is at or after the enable (the first
//     one, or a later one if the pass came late and counted it missed),
//     and its job appears right after that slot (the figure: from the
//     slot, or from the exit if later, to the job).
//   - update --every 3s: the jobs after the exit are on the new
//     timetable, 3 s apart (or a multiple of 3 s, where the seeded
//     schedule's policies skip a slot whose previous sweep is still
//     running or miss one a late pass found past).
func TestScheduleCLIPropagation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const interval = 2 * time.Second
	db := newDB(t, wassotest.Options{})
	p := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", interval.String())

	type job struct {
		slot, created time.Time
	}
	// sweepsAfter returns errors instead of failing the test, for
	// Eventually conditions.
	sweepsAfter := func(after time.Time) ([]job, error) {
		rows, err := db.Pool.Query(ctx, `
			SELECT (metadata->>'slot')::timestamptz, created_at FROM river_job
			WHERE metadata->>'schedule' = 'attendance-sweep' AND created_at > $1 ORDER BY created_at`, after)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (job, error) {
			var j job
			err := row.Scan(&j.slot, &j.created)
			return j, err
		})
	}
	// clock is the database's clock: the jobs' created_at are on it.
	clock := func() time.Time {
		var now time.Time
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now))
		return now
	}
	// exit runs the command and returns the clock just before it started
	// and just after it exited.
	exit := func(sub ...string) (time.Time, time.Time) {
		before := clock()
		schedCLI(t, db, cliOpts{}, sub...)
		return before, clock()
	}
	waitJobs := func(after time.Time, n int) []job {
		t.Helper()
		var jobs []job
		require.Eventually(t, func() bool {
			var err error
			jobs, err = sweepsAfter(after)
			return err == nil && len(jobs) >= n
		}, 30*time.Second, 20*time.Millisecond, "%d sweeps after %s", n, after)
		return jobs
	}

	// The seeded schedule runs.
	waitJobs(time.Time{}, 2)

	// Disable: nothing after the exit, over three slots: until two
	// passes of the scheduler have run after the third slot past the
	// exit, as the witness schedule's jobs show.
	schedCLI(t, db, cliOpts{}, "add", "witness", "--kind", attendance.SweepKind, "--every", "1s", "--overlap", "allow")
	_, disabledAt := exit("disable", "attendance-sweep")
	var lastSlot time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT max((metadata->>'slot')::timestamptz) FROM river_job WHERE metadata->>'schedule' = 'attendance-sweep'`).Scan(&lastSlot))
	spWaitPassAfter(t, p, db, "witness", disabledAt.Add(3*interval))
	after, err := sweepsAfter(disabledAt)
	require.NoError(t, err)
	require.Empty(t, after, "no sweep enqueued after disable exited")
	t.Logf("disable: 0 sweeps in the %s after the command exited (the last slot run was %s before the exit; the next would have been %s after it)",
		clock().Sub(disabledAt).Round(time.Millisecond), disabledAt.Sub(lastSlot).Round(time.Millisecond), lastSlot.Add(interval).Sub(disabledAt).Round(time.Millisecond))
	schedCLI(t, db, cliOpts{}, "remove", "witness")

	// Enable: the next slot's job, right after that slot.
	enabling, enabledAt := exit("enable", "attendance-sweep")
	first := waitJobs(enabling, 1)[0]
	require.False(t, first.slot.Before(enabling), "no slot from while it was disabled: %s (the enable began at %s)", first.slot, enabling)
	fromExit := first.created.Sub(enabledAt)
	late := first.created.Sub(maxTime(first.slot, enabledAt))
	require.Less(t, fromExit, 10*time.Second)
	t.Logf("enable: first sweep enqueued %s after the command exited; its slot was %s after the exit, and the job came %s after max(slot, exit)",
		fromExit.Round(time.Millisecond), first.slot.Sub(enabledAt).Round(time.Millisecond), late.Round(time.Millisecond))

	// Update the interval: the jobs after the exit are on the new
	// timetable, 3 s apart.
	const newInterval = 3 * time.Second
	_, updatedAt := exit("update", "attendance-sweep", "--every", newInterval.String())
	jobs := waitJobs(updatedAt, 3)
	stored := schedList(t, db)["attendance-sweep"]
	require.Equal(t, "3s", *stored.Every)
	require.Zero(t, jobs[0].slot.Sub(*stored.StartAt)%newInterval, "slots anchored at the schedule's start")
	for i := 1; i < len(jobs); i++ {
		gap := jobs[i].slot.Sub(jobs[i-1].slot)
		require.True(t, gap > 0 && gap%newInterval == 0, "job %d after the update is %s after the previous one, off the new timetable", i, gap)
	}
	fromExit = jobs[0].created.Sub(updatedAt)
	late = jobs[0].created.Sub(maxTime(jobs[0].slot, updatedAt))
	require.Less(t, fromExit, 10*time.Second)
	t.Logf("update --every %s: first sweep on the new interval enqueued %s after the command exited; its slot was %s after the exit, and the job came %s after max(slot, exit)",
		newInterval, fromExit.Round(time.Millisecond), jobs[0].slot.Sub(updatedAt).Round(time.Millisecond), late.Round(time.Millisecond))

	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
