package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/celerybeat"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// celeryNow is the store's clock in the import tests.
var celeryNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func celeryPtr[T any](v T) *T { return &v }

func celeryTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// celeryStore is a store on db at celeryNow, in Asia/Seoul by default as
// the runner's.
func celeryStore(t *testing.T) *schedule.Store {
	t.Helper()
	store, err := schedule.NewStore(schedule.StoreConfig{
		Kinds:           wassoriver.ScheduleKinds(),
		DefaultTimeZone: "Asia/Seoul",
		Now:             func() time.Time { return celeryNow },
	})
	require.NoError(t, err)
	return store
}

// celeryTaskKinds is the mapping of the import tests: the default, and a
// second task written in another case than its key.
var celeryTaskKinds = map[string]string{
	wassoriver.CeleryTaskMarkAbsent: attendance.SweepKind,
	"scheduler.tasks.settle_event":  attendance.SettleEventKind,
}

// celeryFixture fills django-celery-beat's tables with what a Django
// admin could hold, each periodic task named for what it tests, and
// returns the tasks' ids by name.
func celeryFixture(t *testing.T, db *wassotest.DB) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, celerybeat.Create(ctx, db.Pool))
	ids := map[string]int64{}
	interval := func(every int, period string) int64 {
		id, err := celerybeat.Interval(ctx, db.Pool, every, period)
		require.NoError(t, err)
		return id
	}
	crontab := func(minute, hour, dom, moy, dow, tz string) int64 {
		id, err := celerybeat.Crontab(ctx, db.Pool, minute, hour, dom, moy, dow, tz)
		require.NoError(t, err)
		return id
	}
	add := func(task celerybeat.Task) {
		if task.Task == "" {
			task.Task = wassoriver.CeleryTaskMarkAbsent
		}
		id, err := celerybeat.AddTask(ctx, db.Pool, task)
		require.NoError(t, err)
		ids[task.Name] = id
	}
	every5m := interval(5, "minutes")
	add(celerybeat.Task{Name: "Mark absent (every 5 min)", Interval: every5m, Enabled: true,
		Description: "Celery beat's sweep", TotalRunCount: 1234, LastRunAt: celeryPtr(celeryTime("2025-03-01T11:55:00Z"))})
	add(celerybeat.Task{Name: "nightly-sweep-seoul", Crontab: crontab("0", "3", "*", "*", "*", "Asia/Seoul"), Enabled: true,
		Kwargs: `{"lookback": 86400000000000}`, Queue: celeryPtr("celery"), Priority: celeryPtr(5), Exchange: celeryPtr("beat"),
		Headers: `{"x": 1}`, ExpireSeconds: celeryPtr(600),
		StartTime: celeryPtr(celeryTime("2025-03-01T00:00:00Z")), Expires: celeryPtr(celeryTime("2026-01-01T00:00:00Z"))})
	add(celerybeat.Task{Name: "weekday-business-hours", Crontab: crontab("*/15", "9-17", "*", "*", "mon-fri", "UTC"), Enabled: true,
		Queue: celeryPtr("high"), Priority: celeryPtr(0)})
	add(celerybeat.Task{Name: "weekend-mornings", Crontab: crontab("30", "8", "*", "*", "sat-sun", "Asia/Seoul"), Enabled: true})
	add(celerybeat.Task{Name: "sundays-as-7", Crontab: crontab("0", "12", "*", "*", "7", "UTC"), Enabled: true})
	add(celerybeat.Task{Name: "month-wrap", Crontab: crontab("0", "0", "25-5", "nov-feb", "*", "UTC"), Enabled: true})
	add(celerybeat.Task{Name: "paused-hourly", Interval: interval(1, "hours"), Enabled: false})
	add(celerybeat.Task{Name: "one-off-tomorrow", Interval: interval(1, "days"), Enabled: true, OneOff: true,
		StartTime: celeryPtr(celeryTime("2025-03-02T09:00:00Z"))})
	add(celerybeat.Task{Name: "one-off-done", Interval: interval(1, "days"), Enabled: true, OneOff: true,
		TotalRunCount: 1, LastRunAt: celeryPtr(celeryTime("2025-02-01T00:00:00Z"))})
	add(celerybeat.Task{Name: "expired-sweep", Interval: interval(10, "minutes"), Enabled: true, Expires: celeryPtr(celeryTime("2025-02-01T00:00:00Z"))})
	add(celerybeat.Task{Name: "celery.backend_cleanup", Task: "celery.backend_cleanup", Crontab: crontab("0", "4", "*", "*", "*", "UTC"), Enabled: true})
	add(celerybeat.Task{Name: "weekly digest", Task: "reports.tasks.weekly_digest", Interval: every5m, Enabled: true})
	solar, err := celerybeat.Solar(ctx, db.Pool, "sunrise", "37.566500", "126.978000")
	require.NoError(t, err)
	add(celerybeat.Task{Name: "sunrise sweep", Solar: solar, Enabled: true})
	clocked, err := celerybeat.Clocked(ctx, db.Pool, celeryTime("2025-04-01T00:00:00Z"))
	require.NoError(t, err)
	add(celerybeat.Task{Name: "clocked sweep", Clock: clocked, Enabled: true, OneOff: true})
	add(celerybeat.Task{Name: "positional", Interval: every5m, Enabled: true, Args: `[7, "x"]`})
	add(celerybeat.Task{Name: "bad kwargs", Interval: every5m, Enabled: true, Kwargs: `{"days": 1}`})
	add(celerybeat.Task{Name: "dom and dow", Crontab: crontab("0", "9", "1", "*", "1", "UTC"), Enabled: true})
	add(celerybeat.Task{Name: "nightly sweep", Crontab: crontab("0", "2", "*", "*", "*", "Asia/Seoul"), Enabled: true})
	add(celerybeat.Task{Name: "nightly/sweep", Crontab: crontab("0", "1", "*", "*", "*", "Asia/Seoul"), Enabled: true})
	add(celerybeat.Task{Name: "출석 체크", Interval: interval(30, "minutes"), Enabled: true})
	add(celerybeat.Task{Name: "too fast", Interval: interval(500, "microseconds"), Enabled: true})
	add(celerybeat.Task{Name: "settle one event", Task: "scheduler.tasks.Settle_Event", Crontab: crontab("0", "*/6", "*", "*", "*", "UTC"),
		Enabled: true, Kwargs: `{"event_id": 42, "deadline": "2025-03-01T00:00:00Z"}`})
	require.NoError(t, celerybeat.Touch(ctx, db.Pool))
	return ids
}

// wassoScheduleDump is every row of wasso_schedule with its xmin, so that
// two dumps are equal only if no row was written in between.
func wassoScheduleDump(t *testing.T, db *wassotest.DB) string {
	t.Helper()
	var dump string
	err := db.Pool.QueryRow(context.Background(),
		`SELECT coalesce(string_agg(format('%s %s', xmin, t::text), E'\n' ORDER BY name), '') FROM wasso_schedule AS t`).Scan(&dump)
	require.NoError(t, err)
	return dump
}

func djangoDump(t *testing.T, db *wassotest.DB) string {
	t.Helper()
	dump, err := celerybeat.Dump(context.Background(), db.Pool)
	require.NoError(t, err)
	require.Contains(t, dump, "Mark absent (every 5 min)")
	return dump
}

func entriesByCeleryName(r *schedule.CeleryImportReport) map[string]schedule.CeleryImportEntry {
	out := map[string]schedule.CeleryImportEntry{}
	for _, e := range r.Entries {
		out[e.CeleryName] = e
	}
	return out
}

// TestImportCeleryBeat imports a django-celery-beat admin's worth of
// periodic tasks: a dry run writes nothing, the import maps each field,
// skips what has no equivalent with the reason, a second import changes
// nothing, an operator's edit survives a third, and Django's tables are
// never written.
func TestImportCeleryBeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	ids := celeryFixture(t, db)
	store := celeryStore(t)
	// The sweep a runner seeds: the import points out the Celery task
	// doing the same.
	_, err := store.Create(ctx, db.Pool, schedule.Schedule{Name: wassoriver.SweepScheduleName, Kind: attendance.SweepKind, Every: 5 * time.Minute, Enabled: true})
	require.NoError(t, err)
	django := djangoDump(t, db)
	before := wassoScheduleDump(t, db)
	opts := schedule.CeleryImportOptions{TaskKinds: celeryTaskKinds}

	// A dry run reports the import and writes nothing.
	dryOpts := opts
	dryOpts.DryRun = true
	dry, err := schedule.ImportCeleryBeat(ctx, db.Pool, store, dryOpts)
	require.NoError(t, err)
	require.True(t, dry.DryRun)
	require.Equal(t, before, wassoScheduleDump(t, db), "a dry run writes nothing")
	require.Len(t, dry.Entries, len(ids))

	report, err := schedule.ImportCeleryBeat(ctx, db.Pool, store, opts)
	require.NoError(t, err)
	require.False(t, report.DryRun)
	require.Equal(t, dry.Entries, report.Entries, "the dry run reported exactly what the import did")
	require.Equal(t, 14, report.Created, "%+v", report)
	require.Zero(t, report.Unchanged)
	require.Zero(t, report.Exists)
	require.Equal(t, 8, report.Skipped)
	require.Equal(t, len(ids), len(report.Entries))
	for i, e := range report.Entries {
		require.Equal(t, ids[e.CeleryName], e.ID)
		if i > 0 {
			require.Less(t, report.Entries[i-1].ID, e.ID, "by PeriodicTask id")
		}
	}
	require.Equal(t, "22 django-celery-beat tasks: 14 created, 0 unchanged, 0 exist (left as is), 8 skipped", report.Summary())
	require.Contains(t, dry.Summary(), "14 would be created")
	require.Contains(t, dry.Summary(), "(dry run: nothing was written)")

	got := entriesByCeleryName(report)
	get := func(name string) *schedule.Schedule {
		t.Helper()
		s, err := store.Get(ctx, db.Pool, name)
		require.NoError(t, err, name)
		return s
	}

	// Interval, renamed, with its history.
	e := got["Mark absent (every 5 min)"]
	require.Equal(t, schedule.CeleryCreated, e.Action)
	require.True(t, e.Renamed)
	s := get("Mark-absent-every-5-min")
	require.Equal(t, e.Schedule, s)
	require.Equal(t, attendance.SweepKind, s.Kind)
	require.JSONEq(t, `{}`, string(s.Args))
	require.Equal(t, 5*time.Minute, s.Every)
	require.Empty(t, s.Cron)
	require.Equal(t, "Asia/Seoul", s.TimeZone, "the store's default")
	require.True(t, s.Enabled)
	require.Equal(t, "default", s.Queue)
	require.Equal(t, 1, s.Priority)
	require.Equal(t, 25, s.MaxAttempts)
	require.Zero(t, s.StartAt)
	require.Zero(t, s.ExpiresAt)
	require.False(t, s.OneOff)
	require.Equal(t, "Celery beat's sweep", s.Description)
	require.Equal(t, schedule.MissedOnce, s.Missed)
	require.Equal(t, schedule.OverlapSkip, s.Overlap)
	require.Equal(t, int64(1234), s.TotalRunCount, "the history is copied")
	require.Equal(t, celeryTime("2025-03-01T11:55:00Z"), s.LastRunAt)
	require.Zero(t, s.LastJobID)
	require.Equal(t, celeryTime("2025-03-01T12:00:00Z"), s.NextRunAt)
	require.Equal(t, `created "Mark absent (every 5 min)" as Mark-absent-every-5-min: scheduler.tasks.mark_absent_for_past_events → attendance.sweep, every 5m0s; `+
		`schedule attendance-sweep (every 5m0s) already enqueues attendance.sweep with the same args: disable one of them`, e.Line(false))

	// Crontab in Asia/Seoul with everything else set.
	e = got["nightly-sweep-seoul"]
	require.False(t, e.Renamed)
	s = get("nightly-sweep-seoul")
	require.Equal(t, "0 3 * * *", s.Cron)
	require.Zero(t, s.Every)
	require.Equal(t, "Asia/Seoul", s.TimeZone)
	require.JSONEq(t, `{"lookback": 86400000000000}`, string(s.Args))
	require.Equal(t, "default", s.Queue, `Celery's default queue "celery" is the kind's`)
	require.Equal(t, 2, s.Priority, "celery 5 → 2")
	require.Equal(t, celeryTime("2025-03-01T00:00:00Z"), s.StartAt)
	require.Equal(t, celeryTime("2026-01-01T00:00:00Z"), s.ExpiresAt)
	require.Equal(t, celeryTime("2025-03-01T18:00:00Z"), s.NextRunAt, "03:00 in Seoul")
	require.Zero(t, s.TotalRunCount)
	require.Zero(t, s.LastRunAt)
	require.Equal(t, `created nightly-sweep-seoul: scheduler.tasks.mark_absent_for_past_events → attendance.sweep, cron "0 3 * * *" Asia/Seoul; `+
		`queue "celery" (Celery's default) → the kind's queue; celery priority 5 → priority 2; exchange beat not imported (no equivalent for River jobs); `+
		`headers {"x": 1} not imported (no equivalent for River jobs); expire_seconds 600 not imported (no equivalent for River jobs)`, e.Line(false))
	require.True(t, strings.HasPrefix(dry.Entries[1].Line(true), "would create nightly-sweep-seoul: "))

	// Crontab in UTC; Celery's syntax rewritten where cron reads it
	// otherwise.
	s = get("weekday-business-hours")
	require.Equal(t, "*/15 9-17 * * mon-fri", s.Cron)
	require.Equal(t, "UTC", s.TimeZone)
	require.Equal(t, "high", s.Queue)
	require.Equal(t, 1, s.Priority)
	require.Contains(t, got["weekday-business-hours"].Notes, "queue high: a runner must work it (run.queues)")
	require.Equal(t, celeryTime("2025-03-03T09:00:00Z"), s.NextRunAt, "Monday 09:00 UTC")
	require.Equal(t, "30 8 * * 0,6", get("weekend-mornings").Cron, "sat-sun wraps around in Celery")
	require.Equal(t, "0 12 * * 0", get("sundays-as-7").Cron)
	require.Equal(t, "0 0 1-5,25-31 1,2,11,12 *", get("month-wrap").Cron)

	s = get("paused-hourly")
	require.False(t, s.Enabled)
	require.Equal(t, time.Hour, s.Every)
	require.Zero(t, s.NextRunAt)
	require.True(t, strings.HasSuffix(got["paused-hourly"].Line(false), "every 1h0m0s, disabled"))

	s = get("one-off-tomorrow")
	require.True(t, s.OneOff)
	require.True(t, s.Enabled)
	require.Equal(t, 24*time.Hour, s.Every)
	require.Equal(t, celeryTime("2025-03-02T09:00:00Z"), s.StartAt)
	require.Equal(t, celeryTime("2025-03-02T09:00:00Z"), s.NextRunAt)

	s = get("one-off-done")
	require.True(t, s.OneOff)
	require.False(t, s.Enabled, "a one-off that ran is not run again")
	require.Equal(t, int64(1), s.TotalRunCount)
	require.Contains(t, got["one-off-done"].Notes, "one-off task already ran (total_run_count 1): imported disabled")

	s = get("expired-sweep")
	require.False(t, s.Enabled)
	require.Equal(t, celeryTime("2025-02-01T00:00:00Z"), s.ExpiresAt)
	require.Contains(t, got["expired-sweep"].Notes, "expired at 2025-02-01T00:00:00Z: imported disabled")

	// Names: sanitised, collisions resolved by id, nothing left.
	require.Equal(t, "nightly-sweep", got["nightly sweep"].Name)
	require.Equal(t, fmt.Sprintf("nightly-sweep-%d", ids["nightly/sweep"]), got["nightly/sweep"].Name)
	require.Equal(t, "0 1 * * *", get(got["nightly/sweep"].Name).Cron)
	require.Equal(t, fmt.Sprintf("celery-%d", ids["출석 체크"]), got["출석 체크"].Name)
	require.Equal(t, 30*time.Minute, get(got["출석 체크"].Name).Every)

	// A mapping of the caller's, matched regardless of case.
	s = get("settle-one-event")
	require.Equal(t, attendance.SettleEventKind, s.Kind)
	require.Equal(t, "0 */6 * * *", s.Cron)
	require.JSONEq(t, `{"event_id": 42, "deadline": "2025-03-01T00:00:00Z"}`, string(s.Args))
	require.Equal(t, attendance.QueueExact, s.Queue, "the kind's own queue")

	// Skipped, each with the reason.
	skipped := map[string]string{
		"celery.backend_cleanup": "celery beat's own result-backend cleanup: River deletes finished jobs itself (retention)",
		"weekly digest":          `no job kind for task "reports.tasks.weekly_digest"`,
		"sunrise sweep":          "solar schedule (sunrise at 37.566500, 126.978000) has no equivalent",
		"clocked sweep":          "clocked schedule (once at 2025-04-01T00:00:00Z) is not imported",
		"positional":             `positional args [7, "x"]: job args are named; move them into kwargs`,
		"bad kwargs":             `invalid schedule: args: do not fit attendance.sweep: json: unknown field "days"`,
		"dom and dow":            `crontab restricts both day_of_month "1" and day_of_week "1": Celery runs it on days matching both, a cron expression on days matching either`,
		"too fast":               "invalid schedule: every: 500µs must be between 1s and 744h0m0s",
	}
	for name, reason := range skipped {
		e := got[name]
		require.Equal(t, schedule.CelerySkipped, e.Action, name)
		require.Contains(t, e.Reason, reason, name)
		require.Nil(t, e.Schedule, name)
		require.Contains(t, e.Line(false), fmt.Sprintf("skipped %q (%s): ", name, e.Task))
	}
	e = got["출석 체크"]
	require.True(t, strings.HasPrefix(e.Line(false), fmt.Sprintf(`created "출석 체크" as celery-%d: `, ids["출석 체크"])), e.Line(false))
	var created []string
	for _, e := range report.Entries {
		if e.Action == schedule.CeleryCreated {
			created = append(created, e.Name)
		}
	}
	list, err := store.List(ctx, db.Pool)
	require.NoError(t, err)
	require.Len(t, list, len(created)+1, "the created schedules and the seeded one")

	// The report travels as JSON.
	out, err := json.Marshal(report)
	require.NoError(t, err)
	require.Contains(t, string(out), `"celery_name":"Mark absent (every 5 min)","task":"scheduler.tasks.mark_absent_for_past_events","name":"Mark-absent-every-5-min","renamed":true,"kind":"attendance.sweep","action":"created"`)

	// Importing again changes nothing.
	imported := wassoScheduleDump(t, db)
	again, err := schedule.ImportCeleryBeat(ctx, db.Pool, store, opts)
	require.NoError(t, err)
	require.Equal(t, 14, again.Unchanged)
	require.Zero(t, again.Created)
	require.Zero(t, again.Exists)
	require.Equal(t, 8, again.Skipped)
	require.Equal(t, imported, wassoScheduleDump(t, db), "a second import writes nothing")
	require.Equal(t, `unchanged "Mark absent (every 5 min)" as Mark-absent-every-5-min: already imported`, entriesByCeleryName(again)["Mark absent (every 5 min)"].Line(false))

	// An operator's edit after the import is kept.
	later := "0 4 * * *"
	_, err = store.Update(ctx, db.Pool, "nightly-sweep-seoul", schedule.Update{Cron: &later, Enabled: celeryPtr(false)})
	require.NoError(t, err)
	edited := wassoScheduleDump(t, db)
	third, err := schedule.ImportCeleryBeat(ctx, db.Pool, store, opts)
	require.NoError(t, err)
	require.Equal(t, 1, third.Exists)
	require.Equal(t, 13, third.Unchanged)
	e = entriesByCeleryName(third)["nightly-sweep-seoul"]
	require.Equal(t, schedule.CeleryExists, e.Action)
	require.Equal(t, []string{"cron", "enabled"}, e.Differs)
	require.Equal(t, "0 4 * * *", e.Schedule.Cron)
	require.True(t, strings.HasPrefix(e.Line(false), "exists nightly-sweep-seoul: left as is, differs in cron, enabled"), e.Line(false))
	require.Equal(t, edited, wassoScheduleDump(t, db), "the edit is left as is")
	require.Equal(t, "0 4 * * *", get("nightly-sweep-seoul").Cron)

	require.Equal(t, django, djangoDump(t, db), "Django's tables are never written nor locked")
}

// TestImportCeleryBeatNoTables: a database without django-celery-beat's
// tables is ErrNoCeleryBeat, saying where it looked.
func TestImportCeleryBeatNoTables(t *testing.T) {
	t.Parallel()
	db := wassotest.NewDB(t, wassotest.Options{})
	_, err := schedule.ImportCeleryBeat(context.Background(), db.Pool, celeryStore(t), schedule.CeleryImportOptions{TaskKinds: celeryTaskKinds})
	require.ErrorIs(t, err, schedule.ErrNoCeleryBeat)
	require.Contains(t, err.Error(), "django_celery_beat_periodictask")
	require.Contains(t, err.Error(), db.Schema, "names the search_path")
}

// TestImportCeleryBeatOldTables: the tables of a django-celery-beat from
// before solar and clocked schedules, one-off tasks, priorities and
// crontab time zones are imported too.
func TestImportCeleryBeatOldTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	require.NoError(t, celerybeat.Create(ctx, db.Pool))
	_, err := db.Pool.Exec(ctx, `
ALTER TABLE django_celery_beat_periodictask DROP COLUMN solar_id, DROP COLUMN clocked_id, DROP COLUMN one_off,
    DROP COLUMN start_time, DROP COLUMN priority, DROP COLUMN headers, DROP COLUMN expire_seconds;
ALTER TABLE django_celery_beat_crontabschedule DROP COLUMN timezone;
DROP TABLE django_celery_beat_solarschedule, django_celery_beat_clockedschedule;
INSERT INTO django_celery_beat_crontabschedule (minute, hour, day_of_week, day_of_month, month_of_year)
VALUES ('0', '3', '*', '*', '*')`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `
INSERT INTO django_celery_beat_periodictask (name, task, args, kwargs, enabled, total_run_count, date_changed, description, crontab_id)
SELECT 'old', $1, '[]', '{}', true, 0, now(), '', id FROM django_celery_beat_crontabschedule`, wassoriver.CeleryTaskMarkAbsent)
	require.NoError(t, err)
	report, err := schedule.ImportCeleryBeat(ctx, db.Pool, celeryStore(t), schedule.CeleryImportOptions{TaskKinds: celeryTaskKinds})
	require.NoError(t, err)
	require.Equal(t, 1, report.Created, "%+v", report)
	require.Equal(t, "0 3 * * *", report.Entries[0].Schedule.Cron)
	require.Equal(t, "UTC", report.Entries[0].Schedule.TimeZone, "crontabs were in UTC before they had a time zone")
}

// TestImportCeleryBeatRollsBackOnError: a database error midway writes
// nothing, not even the schedules imported before it.
func TestImportCeleryBeatRollsBackOnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	celeryFixture(t, db)
	// A check the store does not know of refuses the second schedule.
	_, err := db.Pool.Exec(ctx, `ALTER TABLE wasso_schedule ADD CONSTRAINT test_refuse CHECK (name <> 'nightly-sweep-seoul')`)
	require.NoError(t, err)
	_, err = schedule.ImportCeleryBeat(ctx, db.Pool, celeryStore(t), schedule.CeleryImportOptions{TaskKinds: celeryTaskKinds})
	require.Error(t, err)
	require.Contains(t, err.Error(), `import django-celery-beat task "nightly-sweep-seoul"`)
	require.False(t, errors.Is(err, schedule.ErrNoCeleryBeat))
	require.Empty(t, wassoScheduleDump(t, db))
}
