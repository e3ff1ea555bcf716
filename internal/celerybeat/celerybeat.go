// Package celerybeat is a test fixture: the tables django-celery-beat's
// migrations create on PostgreSQL (django_celery_beat.sql), and helpers to
// fill them the way the Django admin does and to dump them, so that tests
// of the import into wasso_schedule run against Django's real schema and
// can prove that the import never wrote to it.
package celerybeat

import (
	"context"
	_ "embed" // the DDL
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DDL creates the django_celery_beat_* tables in the first schema of
// search_path, as django-celery-beat 2.x's migrations 0001 to 0019 do.
//
//go:embed django_celery_beat.sql
var DDL string

// Tables are django-celery-beat's tables, in the order Dump writes them.
var Tables = []string{
	"django_celery_beat_periodictask",
	"django_celery_beat_intervalschedule",
	"django_celery_beat_crontabschedule",
	"django_celery_beat_solarschedule",
	"django_celery_beat_clockedschedule",
	"django_celery_beat_periodictasks",
}

// DB is what the helpers need: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Create runs DDL on db.
func Create(ctx context.Context, db DB) error {
	if _, err := db.Exec(ctx, DDL); err != nil {
		return fmt.Errorf("create django-celery-beat tables: %w", err)
	}
	return nil
}

// Interval inserts an IntervalSchedule (period: days, hours, minutes,
// seconds or microseconds) and returns its id.
func Interval(ctx context.Context, db DB, every int, period string) (int64, error) {
	return insertID(ctx, db, `INSERT INTO django_celery_beat_intervalschedule (every, period) VALUES ($1, $2) RETURNING id`, every, period)
}

// Crontab inserts a CrontabSchedule and returns its id.
func Crontab(ctx context.Context, db DB, minute, hour, dayOfMonth, monthOfYear, dayOfWeek, timeZone string) (int64, error) {
	return insertID(ctx, db, `
INSERT INTO django_celery_beat_crontabschedule (minute, hour, day_of_week, day_of_month, month_of_year, timezone)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, minute, hour, dayOfWeek, dayOfMonth, monthOfYear, timeZone)
}

// Solar inserts a SolarSchedule (event: sunrise, sunset, ...) and returns
// its id.
func Solar(ctx context.Context, db DB, event string, latitude, longitude string) (int64, error) {
	return insertID(ctx, db, `INSERT INTO django_celery_beat_solarschedule (event, latitude, longitude) VALUES ($1, $2::numeric, $3::numeric) RETURNING id`, event, latitude, longitude)
}

// Clocked inserts a ClockedSchedule and returns its id.
func Clocked(ctx context.Context, db DB, at time.Time) (int64, error) {
	return insertID(ctx, db, `INSERT INTO django_celery_beat_clockedschedule (clocked_time) VALUES ($1) RETURNING id`, at)
}

// Task is a PeriodicTask. The zero values of Args, Kwargs and Headers are
// the model's defaults ('[]', '{}', '{}'); Enabled has none here, as a
// test says which it wants. Exactly one of the schedule ids is set in a
// row the admin wrote.
type Task struct {
	Name, Task                      string
	Args, Kwargs, Headers           string
	Queue, Exchange, RoutingKey     *string
	Priority, ExpireSeconds         *int
	Expires, StartTime, LastRunAt   *time.Time
	Enabled, OneOff                 bool
	TotalRunCount                   int
	Description                     string
	Interval, Crontab, Solar, Clock int64 // ids; zero: none
}

// AddTask inserts t as the admin would (date_changed now) and returns its
// id.
func AddTask(ctx context.Context, db DB, t Task) (int64, error) {
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	id := func(v int64) *int64 {
		if v == 0 {
			return nil
		}
		return &v
	}
	return insertID(ctx, db, `
INSERT INTO django_celery_beat_periodictask (name, task, args, kwargs, queue, exchange, routing_key, expires,
    enabled, last_run_at, total_run_count, date_changed, description, crontab_id, interval_id, solar_id,
    one_off, start_time, priority, headers, clocked_id, expire_seconds)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
RETURNING id`,
		t.Name, t.Task, def(t.Args, "[]"), def(t.Kwargs, "{}"), t.Queue, t.Exchange, t.RoutingKey, t.Expires,
		t.Enabled, t.LastRunAt, t.TotalRunCount, t.Description, id(t.Crontab), id(t.Interval), id(t.Solar),
		t.OneOff, t.StartTime, t.Priority, def(t.Headers, "{}"), id(t.Clock), t.ExpireSeconds)
}

// Touch records a change the way django-celery-beat's signals do
// (PeriodicTasks.update_changed), so the fixture holds a row there too.
func Touch(ctx context.Context, db DB) error {
	_, err := db.Exec(ctx, `
INSERT INTO django_celery_beat_periodictasks (ident, last_update) VALUES (1, now())
ON CONFLICT (ident) DO UPDATE SET last_update = excluded.last_update`)
	if err != nil {
		return fmt.Errorf("touch django_celery_beat_periodictasks: %w", err)
	}
	return nil
}

// Dump returns every row of Tables with its physical identity (ctid, the
// inserting and the deleting or locking transaction), one line a row, so
// that two dumps are equal only if nothing updated, deleted, inserted or
// even locked (SELECT ... FOR SHARE sets xmax) a row in between.
func Dump(ctx context.Context, db DB) (string, error) {
	var b strings.Builder
	for _, table := range Tables {
		var rows string
		q := fmt.Sprintf(`SELECT coalesce(string_agg(format('%%s xmin=%%s xmax=%%s %%s', ctid, xmin, xmax, t::text), E'\n' ORDER BY ctid), '') FROM %s AS t`,
			pgx.Identifier{table}.Sanitize())
		if err := db.QueryRow(ctx, q).Scan(&rows); err != nil {
			return "", fmt.Errorf("dump %s: %w", table, err)
		}
		fmt.Fprintf(&b, "-- %s\n%s\n", table, rows)
	}
	return b.String(), nil
}

func insertID(ctx context.Context, db DB, sql string, args ...any) (int64, error) {
	var id int64
	if err := db.QueryRow(ctx, sql, args...).Scan(&id); err != nil {
		return 0, fmt.Errorf("insert into django-celery-beat tables: %w", err)
	}
	return id, nil
}
