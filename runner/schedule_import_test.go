package runner_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/celerybeat"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// requireImportCommand skips the test when the binary has no
// `schedule import-celery-beat` (the schedule command group does not add
// it yet), so that the test runs as soon as it does.
func requireImportCommand(t *testing.T) {
	t.Helper()
	res := runCLI(t, cliOpts{}, "schedule", "import-celery-beat", "--help")
	if res.code != 0 || !strings.Contains(res.stdout, "import-celery-beat [--dry-run]") {
		t.Skipf("wasso-runner has no `schedule import-celery-beat` yet:\n%s", res)
	}
}

type celeryImportOutput struct {
	DryRun    bool `json:"dry_run"`
	Created   int  `json:"created"`
	Unchanged int  `json:"unchanged"`
	Exists    int  `json:"exists"`
	Skipped   int  `json:"skipped"`
	Tasks     []struct {
		CeleryName string          `json:"celery_name"`
		Name       string          `json:"name"`
		Action     string          `json:"action"`
		Reason     string          `json:"reason"`
		Differs    []string        `json:"differs"`
		Schedule   json.RawMessage `json:"schedule"`
	} `json:"tasks"`
}

// TestScheduleImportCeleryBeat runs the import as an operator would: no
// django-celery-beat tables is a clear failure, --dry-run writes nothing,
// the import prints a line per task and a summary, a second import
// changes nothing, an edited schedule is left as is, --task maps one more
// task, and Django's tables are never written.
func TestScheduleImportCeleryBeat(t *testing.T) {
	t.Parallel()
	requireImportCommand(t)
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	importArgs := func(extra ...string) []string {
		return args([]string{"schedule", "import-celery-beat"}, dbArgs(db), extra)
	}

	res := runCLI(t, cliOpts{}, importArgs()...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, res.stderr, "nothing to import: no django-celery-beat tables: django_celery_beat_periodictask")
	require.Contains(t, res.stderr, db.Schema, "it says where it looked")

	require.NoError(t, celerybeat.Create(ctx, db.Pool))
	every5m, err := celerybeat.Interval(ctx, db.Pool, 5, "minutes")
	require.NoError(t, err)
	seoul3am, err := celerybeat.Crontab(ctx, db.Pool, "0", "3", "*", "*", "*", "Asia/Seoul")
	require.NoError(t, err)
	utcMondays, err := celerybeat.Crontab(ctx, db.Pool, "30", "9", "*", "*", "1", "UTC")
	require.NoError(t, err)
	sunrise, err := celerybeat.Solar(ctx, db.Pool, "sunrise", "37.566500", "126.978000")
	require.NoError(t, err)
	last := time.Date(2025, 3, 1, 11, 55, 0, 0, time.UTC)
	for _, task := range []celerybeat.Task{
		{Name: "mark absent", Task: wassoriver.CeleryTaskMarkAbsent, Interval: every5m, Enabled: true, TotalRunCount: 42, LastRunAt: &last},
		{Name: "nightly-sweep", Task: wassoriver.CeleryTaskMarkAbsent, Crontab: seoul3am, Enabled: true, Kwargs: `{"lookback": 172800000000000}`},
		{Name: "weekly digest", Task: "reports.tasks.weekly_digest", Crontab: utcMondays, Enabled: true},
		{Name: "sunrise", Task: wassoriver.CeleryTaskMarkAbsent, Solar: sunrise, Enabled: true},
	} {
		_, err := celerybeat.AddTask(ctx, db.Pool, task)
		require.NoError(t, err)
	}
	django, err := celerybeat.Dump(ctx, db.Pool)
	require.NoError(t, err)
	schedules := `SELECT count(*) FROM wasso_schedule`

	res = runCLI(t, cliOpts{}, importArgs("--dry-run")...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, `would create "mark absent" as mark-absent: scheduler.tasks.mark_absent_for_past_events → attendance.sweep, every 5m0s`)
	require.Contains(t, res.stdout, `would create nightly-sweep: scheduler.tasks.mark_absent_for_past_events → attendance.sweep, cron "0 3 * * *" Asia/Seoul`)
	require.Contains(t, res.stdout, `skipped "weekly digest" (reports.tasks.weekly_digest): no job kind for task "reports.tasks.weekly_digest"`)
	require.Contains(t, res.stdout, `skipped "sunrise" (scheduler.tasks.mark_absent_for_past_events): solar schedule`)
	require.Contains(t, res.stdout, "4 django-celery-beat tasks: 2 would be created, 0 unchanged, 0 exist (left as is), 2 skipped (dry run: nothing was written)")
	require.Len(t, strings.Split(strings.TrimSpace(res.stdout), "\n"), 5, "a line per task and the summary")
	require.Zero(t, count(t, db.Pool, schedules), "a dry run writes nothing")

	res = runCLI(t, cliOpts{}, importArgs("--dry-run", "--json")...)
	require.Equal(t, 0, res.code, res.String())
	var dry celeryImportOutput
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &dry), res.stdout)
	require.True(t, dry.DryRun)
	require.Equal(t, 2, dry.Created)
	require.Equal(t, 2, dry.Skipped)
	require.Len(t, dry.Tasks, 4)
	require.Zero(t, count(t, db.Pool, schedules))

	res = runCLI(t, cliOpts{}, importArgs()...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, `created "mark absent" as mark-absent: `)
	require.Contains(t, res.stdout, "4 django-celery-beat tasks: 2 created, 0 unchanged, 0 exist (left as is), 2 skipped\n")
	require.Contains(t, res.stderr, "django-celery-beat import", "a log line per task")
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_schedule WHERE name = 'mark-absent' AND kind = 'attendance.sweep'
        AND every_us = 300000000 AND enabled AND total_run_count = 42 AND last_run_at = $1`, last))
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_schedule WHERE name = 'nightly-sweep' AND cron = '0 3 * * *'
        AND time_zone = 'Asia/Seoul' AND args = '{"lookback": 172800000000000}'::jsonb AND next_run_at IS NOT NULL`))
	require.Equal(t, 2, count(t, db.Pool, schedules))

	res = runCLI(t, cliOpts{}, importArgs()...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, `unchanged "mark absent" as mark-absent: already imported`)
	require.Contains(t, res.stdout, "2 unchanged")

	// An operator's edit is kept.
	_, err = db.Pool.Exec(ctx, `UPDATE wasso_schedule SET every_us = 600000000 WHERE name = 'mark-absent'`)
	require.NoError(t, err)
	res = runCLI(t, cliOpts{}, importArgs("--json")...)
	require.Equal(t, 0, res.code, res.String())
	var out celeryImportOutput
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
	require.Equal(t, 1, out.Exists)
	require.Equal(t, 1, out.Unchanged)
	require.Equal(t, "exists", out.Tasks[0].Action)
	require.Equal(t, []string{"every"}, out.Tasks[0].Differs)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM wasso_schedule WHERE name = 'mark-absent' AND every_us = 600000000`))

	// --task maps one more task.
	res = runCLI(t, cliOpts{}, importArgs("--task", "reports.tasks.weekly_digest=attendance.sweep")...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, `created "weekly digest" as weekly-digest: reports.tasks.weekly_digest → attendance.sweep, cron "30 9 * * 1" UTC`)
	require.Equal(t, 3, count(t, db.Pool, schedules))

	after, err := celerybeat.Dump(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, django, after, "Django's tables are never written nor locked")

	// Usage errors.
	for _, bad := range [][]string{{"--task", "no-kind"}, {"--task", "=attendance.sweep"}, {"extra"}, {"--no-such-flag"}} {
		res = runCLI(t, cliOpts{}, importArgs(bad...)...)
		require.Equal(t, 2, res.code, "%v: %s", bad, res)
	}
}

// TestScheduleImportCeleryBeatNotMigrated: a database whose schedule table
// is missing fails (exit 1) and says to migrate, writing nothing.
func TestScheduleImportCeleryBeatNotMigrated(t *testing.T) {
	t.Parallel()
	requireImportCommand(t)
	ctx := context.Background()
	db := newDB(t, wassotest.Options{Bare: true})
	require.NoError(t, celerybeat.Create(ctx, db.Pool))
	res := runCLI(t, cliOpts{}, args([]string{"schedule", "import-celery-beat"}, dbArgs(db))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, res.stderr, "migrate up")
}
