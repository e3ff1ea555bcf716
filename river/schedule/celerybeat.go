package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The Django backend kept its periodic tasks in django-celery-beat's
// tables, edited in the Django admin. ImportCeleryBeat carries them over
// into wasso_schedule once, when Celery is switched off, so that no
// schedule has to be typed in again: it reads the django_celery_beat_*
// tables of the same database and creates a schedule per periodic task
// that has an equivalent here.

// ErrNoCeleryBeat is returned, wrapped with what search_path holds, when
// the database has no django-celery-beat tables to import from.
var ErrNoCeleryBeat = errors.New("no django-celery-beat tables")

// celeryBackendCleanup is the task celery beat adds by itself to clean its
// result backend.
const celeryBackendCleanup = "celery.backend_cleanup"

// CeleryImportOptions tunes ImportCeleryBeat.
type CeleryImportOptions struct {
	// TaskKinds maps Celery task names (PeriodicTask.task) to the job
	// kinds that do their work here; a name without an exact match is
	// matched without regard to case. Tasks it does not name are skipped,
	// so an empty map imports nothing.
	TaskKinds map[string]string
	// DryRun does the whole import, store validation included, in a
	// transaction that is rolled back: the report says what an import
	// would do and nothing is written.
	DryRun bool
	// Logger receives a line per periodic task. Nil discards.
	Logger *slog.Logger
}

// CeleryImportAction is what ImportCeleryBeat did with one periodic task.
type CeleryImportAction string

const (
	// CeleryCreated: a schedule was created (or, in a dry run, would be).
	CeleryCreated CeleryImportAction = "created"
	// CeleryUnchanged: a schedule of the name exists with the same
	// definition, from an earlier import: nothing to do.
	CeleryUnchanged CeleryImportAction = "unchanged"
	// CeleryExists: a schedule of the name exists with another definition,
	// changed by an operator since it was imported or created by hand. It
	// is left as it is: an import never overwrites.
	CeleryExists CeleryImportAction = "exists"
	// CelerySkipped: the periodic task has no equivalent here (Reason says
	// why) and nothing was written for it.
	CelerySkipped CeleryImportAction = "skipped"
)

// CeleryImportEntry is what happened to one periodic task.
type CeleryImportEntry struct {
	// ID is the PeriodicTask's id.
	ID int64 `json:"id"`
	// CeleryName is the PeriodicTask's name, as the admin shows it.
	CeleryName string `json:"celery_name"`
	// Task is the Celery task name.
	Task string `json:"task"`
	// Name is the schedule's name: CeleryName, or CeleryName with the
	// characters schedule names refuse replaced (Renamed). Empty when the
	// task was skipped before a name was needed.
	Name string `json:"name,omitempty"`
	// Renamed is true when Name differs from CeleryName.
	Renamed bool `json:"renamed,omitempty"`
	// Kind is the job kind Task maps to, if any.
	Kind   string             `json:"kind,omitempty"`
	Action CeleryImportAction `json:"action"`
	// Reason says why the task was skipped.
	Reason string `json:"reason,omitempty"`
	// Differs names the fields (Schedule's JSON names) in which the
	// existing schedule differs from the periodic task, for CeleryExists.
	Differs []string `json:"differs,omitempty"`
	// Notes are what the import changed or left out on the way: a
	// rename, a priority mapped, fields with no equivalent.
	Notes []string `json:"notes,omitempty"`
	// Schedule is the schedule as stored: the one created (in a dry run,
	// as it would be), or the existing one. Nil when skipped.
	Schedule *Schedule `json:"schedule,omitempty"`
}

// Line describes the entry in one line for people.
func (e CeleryImportEntry) Line(dryRun bool) string {
	var b strings.Builder
	label := e.Name
	if e.Renamed {
		label = fmt.Sprintf("%q as %s", e.CeleryName, e.Name)
	}
	switch e.Action {
	case CeleryCreated:
		verb := "created"
		if dryRun {
			verb = "would create"
		}
		fmt.Fprintf(&b, "%s %s: %s → %s, %s", verb, label, e.Task, e.Kind, describeTiming(e.Schedule))
		if e.Schedule != nil && !e.Schedule.Enabled {
			b.WriteString(", disabled")
		}
	case CeleryUnchanged:
		fmt.Fprintf(&b, "unchanged %s: already imported", label)
	case CeleryExists:
		fmt.Fprintf(&b, "exists %s: left as is, differs in %s", label, strings.Join(e.Differs, ", "))
	default:
		fmt.Fprintf(&b, "skipped %q (%s): %s", e.CeleryName, e.Task, e.Reason)
	}
	for _, n := range e.Notes {
		b.WriteString("; ")
		b.WriteString(n)
	}
	return b.String()
}

func describeTiming(s *Schedule) string {
	switch {
	case s == nil:
		return "-"
	case s.Every != 0:
		return "every " + s.Every.String()
	default:
		return fmt.Sprintf("cron %q %s", s.Cron, s.TimeZone)
	}
}

// CeleryImportReport is what ImportCeleryBeat did, a line per periodic
// task, by PeriodicTask id.
type CeleryImportReport struct {
	DryRun    bool                `json:"dry_run"`
	Created   int                 `json:"created"`
	Unchanged int                 `json:"unchanged"`
	Exists    int                 `json:"exists"`
	Skipped   int                 `json:"skipped"`
	Entries   []CeleryImportEntry `json:"tasks"`
}

// Summary counts the entries in one line.
func (r *CeleryImportReport) Summary() string {
	created := fmt.Sprintf("%d created", r.Created)
	tail := ""
	if r.DryRun {
		created = fmt.Sprintf("%d would be created", r.Created)
		tail = " (dry run: nothing was written)"
	}
	return fmt.Sprintf("%d django-celery-beat tasks: %s, %d unchanged, %d exist (left as is), %d skipped%s",
		len(r.Entries), created, r.Unchanged, r.Exists, r.Skipped, tail)
}

func (r *CeleryImportReport) add(e CeleryImportEntry) {
	switch e.Action {
	case CeleryCreated:
		r.Created++
	case CeleryUnchanged:
		r.Unchanged++
	case CeleryExists:
		r.Exists++
	default:
		r.Skipped++
	}
	r.Entries = append(r.Entries, e)
}

// ImportCeleryBeat creates a schedule in wasso_schedule for each periodic
// task in the django-celery-beat tables of db (found through search_path,
// as wasso_schedule is) that has an equivalent here, and reports what it
// did with each one. It only reads Django's tables, without locking their
// rows, and writes wasso_schedule only, through store, all in one
// transaction that it commits (rolls back when opts.DryRun). The mapping:
//
//   - name: kept when it is a valid schedule name, else each run of
//     characters other than A-Z a-z 0-9 . _ : - becomes one '-' (at most
//     100 characters; a name that is empty then is celery-<id>, one taken
//     by another task of the import gets -<id> appended). Entries report
//     the rename.
//   - task: its job kind from opts.TaskKinds; a task without one is
//     skipped.
//   - interval (every, period) becomes Every, whose slots are multiples
//     of it since start_time or the Unix epoch rather than, as in celery
//     beat, counted from the last run; crontab (minute, hour,
//     day_of_month, month_of_year, day_of_week, timezone) a five-field
//     Cron in TimeZone, with Celery's syntax (names, wrapping ranges,
//     Sunday as 7) rewritten where cron reads it otherwise. A crontab that
//     restricts both day_of_month and day_of_week is skipped: Celery runs
//     it on days matching both, cron on days matching either. Solar and
//     clocked schedules are skipped.
//   - args (positional) must be empty, as job args are named; kwargs, a
//     JSON object, become Args and must fit the kind.
//   - enabled, one_off, start_time (StartAt), expires (ExpiresAt),
//     description and queue (Celery's default queue "celery" meaning the
//     kind's) are copied; priority, 0 to 255 with 0 first as on Celery's
//     Redis transport, becomes River's 1 to 4 the way kombu's default
//     priority steps group it: 0-2 → 1, 3-5 → 2, 6-8 → 3, 9 and up → 4.
//     A one-off that already ran, or a task whose expiry has passed, is
//     imported disabled. exchange, routing_key, headers and
//     expire_seconds have no equivalent and are noted when set.
//   - total_run_count and last_run_at are copied into the created
//     schedule's history.
//
// A created schedule whose job (kind and args) an enabled schedule that
// was there before already enqueues, such as the attendance-sweep a
// runner seeds, is noted: two schedules would run the same job.
//
// Importing again is harmless: a schedule of the name that has the task's
// definition is CeleryUnchanged, one with another definition (an
// operator's edit) CeleryExists, and neither is written. Missed and
// Overlap keep the store's defaults (MissedOnce is what celery beat did
// after a downtime).
//
// Errors: ErrNoCeleryBeat when the tables are missing; a database error
// aborts the import and writes nothing. A task that cannot be imported is
// never an error: it is skipped with the reason, the store's validation
// message when the store refused it.
func ImportCeleryBeat(ctx context.Context, db Beginner, store *Store, opts CeleryImportOptions) (*CeleryImportReport, error) {
	if store == nil {
		return nil, errors.New("import django-celery-beat: no schedule store")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("import django-celery-beat: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	tasks, err := readCeleryTasks(ctx, tx)
	if err != nil {
		return nil, err
	}
	names := celeryScheduleNames(tasks)
	// The schedules there were before, to point out one that already
	// enqueues what a task is imported to enqueue (the seeded
	// attendance-sweep and the Celery task it replaced).
	before, err := store.List(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("import django-celery-beat: %w", err)
	}
	report := &CeleryImportReport{DryRun: opts.DryRun, Entries: []CeleryImportEntry{}}
	for i := range tasks {
		entry, err := store.importCeleryTask(ctx, tx, &tasks[i], names[tasks[i].id], celeryKindOf(opts.TaskKinds))
		if err != nil {
			return nil, fmt.Errorf("import django-celery-beat task %q (id %d): %w", tasks[i].name, tasks[i].id, err)
		}
		if entry.Action == CeleryCreated {
			entry.Notes = append(entry.Notes, sameJobNotes(entry.Schedule, before)...)
		}
		attrs := []any{slog.Int64("id", entry.ID), slog.String("celery_name", entry.CeleryName), slog.String("task", entry.Task),
			slog.String("action", string(entry.Action)), slog.Bool("dry_run", opts.DryRun)}
		if entry.Name != "" {
			attrs = append(attrs, slog.String("schedule", entry.Name))
		}
		if entry.Reason != "" {
			attrs = append(attrs, slog.String("reason", entry.Reason))
		}
		if len(entry.Differs) > 0 {
			attrs = append(attrs, slog.Any("differs", entry.Differs))
		}
		logger.InfoContext(ctx, "django-celery-beat import", attrs...)
		report.add(entry)
	}
	if opts.DryRun {
		return report, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("import django-celery-beat: commit: %w", err)
	}
	return report, nil
}

// celeryKindOf looks a Celery task name up in kinds, and, failing an
// exact match, without regard to case (a configuration loader may have
// lower-cased the names; Python task names differing only in case are not
// a thing), the first of the sorted names matching.
func celeryKindOf(kinds map[string]string) func(task string) (string, bool) {
	return func(task string) (string, bool) {
		if kind, ok := kinds[task]; ok {
			return kind, true
		}
		names := make([]string, 0, len(kinds))
		for name := range kinds {
			if strings.EqualFold(name, task) {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			return "", false
		}
		slices.Sort(names)
		return kinds[names[0]], true
	}
}

// sameJobNotes points out the enabled schedules among others that enqueue
// the same job (kind and args) as created: two sweeps where Celery had one.
func sameJobNotes(created *Schedule, others []Schedule) []string {
	var notes []string
	for _, o := range others {
		if created != nil && created.Enabled && o.Enabled && o.Name != created.Name && o.Kind == created.Kind && jsonEqual(o.Args, created.Args) {
			notes = append(notes, fmt.Sprintf("schedule %s (%s) already enqueues %s with the same args: disable one of them", o.Name, describeTiming(&o), o.Kind))
		}
	}
	return notes
}

// celeryTask is a row of django_celery_beat_periodictask with its
// schedule.
type celeryTask struct {
	id                                   int64
	name, task, args, kwargs             string
	queue, exchange, routingKey, headers *string
	priority, expireSeconds              *int64
	expires, startTime, lastRunAt        *time.Time
	oneOff, enabled                      bool
	totalRunCount                        int64
	description                          string

	hasInterval bool
	every       *int64
	period      *string

	hasCrontab                   bool
	minute, hour, dom, moy, dow  *string
	timeZone                     *string
	hasSolar                     bool
	solarEvent, latitude, longit *string
	hasClocked                   bool
	clockedTime                  *time.Time
}

// Django's tables. The first three exist since django-celery-beat's first
// migration; solar and clocked schedules came later, as did some columns,
// so the import reads what the database has.
const (
	celeryTaskTable     = "django_celery_beat_periodictask"
	celeryIntervalTable = "django_celery_beat_intervalschedule"
	celeryCrontabTable  = "django_celery_beat_crontabschedule"
	celerySolarTable    = "django_celery_beat_solarschedule"
	celeryClockedTable  = "django_celery_beat_clockedschedule"
)

// celeryColumnsSQL lists the columns of those of the tables that
// search_path finds.
const celeryColumnsSQL = `
SELECT t.name, coalesce(a.attname::text, '')
FROM unnest($1::text[]) AS t (name)
JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name))
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped`

func readCeleryTasks(ctx context.Context, tx pgx.Tx) ([]celeryTask, error) {
	rows, err := tx.Query(ctx, celeryColumnsSQL, []string{celeryTaskTable, celeryIntervalTable, celeryCrontabTable, celerySolarTable, celeryClockedTable})
	if err != nil {
		return nil, fmt.Errorf("import django-celery-beat: look up its tables: %w", err)
	}
	cols := map[string]map[string]bool{}
	var table, column string
	_, err = pgx.ForEachRow(rows, []any{&table, &column}, func() error {
		if cols[table] == nil {
			cols[table] = map[string]bool{}
		}
		cols[table][column] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import django-celery-beat: look up its tables: %w", err)
	}
	var missing []string
	for _, t := range []string{celeryTaskTable, celeryIntervalTable, celeryCrontabTable} {
		if cols[t] == nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		var searchPath string
		if err := tx.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&searchPath); err != nil {
			return nil, fmt.Errorf("import django-celery-beat: %w", err)
		}
		return nil, fmt.Errorf("%w: %s not found (search_path %s): point the database URL at the Django database, with the schema of its tables in search_path",
			ErrNoCeleryBeat, strings.Join(missing, ", "), searchPath)
	}

	// or returns the column of the alias when the table has it, else the
	// fallback expression.
	or := func(table, alias, column, fallback string) string {
		if cols[table][column] {
			return alias + "." + column
		}
		return fallback
	}
	solar := cols[celerySolarTable] != nil && cols[celeryTaskTable]["solar_id"]
	clocked := cols[celeryClockedTable] != nil && cols[celeryTaskTable]["clocked_id"]
	selects := []string{
		"t.id::bigint", "t.name::text", "t.task::text", "t.args", "t.kwargs", "t.queue::text", "t.exchange::text", "t.routing_key::text",
		or(celeryTaskTable, "t", "headers", "NULL::text"),
		or(celeryTaskTable, "t", "priority", "NULL") + "::bigint",
		"t.expires",
		or(celeryTaskTable, "t", "expire_seconds", "NULL") + "::bigint",
		or(celeryTaskTable, "t", "one_off", "false"),
		or(celeryTaskTable, "t", "start_time", "NULL::timestamptz"),
		"t.enabled", "t.last_run_at", "t.total_run_count::bigint", "t.description",
		"t.interval_id IS NOT NULL", "i.every::bigint", "i.period::text",
		"t.crontab_id IS NOT NULL", "c.minute::text", "c.hour::text", "c.day_of_month::text", "c.month_of_year::text", "c.day_of_week::text",
		or(celeryCrontabTable, "c", "timezone", "'UTC'") + "::text",
	}
	joins := []string{
		"LEFT JOIN django_celery_beat_intervalschedule AS i ON i.id = t.interval_id",
		"LEFT JOIN django_celery_beat_crontabschedule AS c ON c.id = t.crontab_id",
	}
	if solar {
		selects = append(selects, "t.solar_id IS NOT NULL", "s.event::text", "s.latitude::text", "s.longitude::text")
		joins = append(joins, "LEFT JOIN django_celery_beat_solarschedule AS s ON s.id = t.solar_id")
	} else {
		selects = append(selects, "false", "NULL::text", "NULL::text", "NULL::text")
	}
	if clocked {
		selects = append(selects, "t.clocked_id IS NOT NULL", "k.clocked_time")
		joins = append(joins, "LEFT JOIN django_celery_beat_clockedschedule AS k ON k.id = t.clocked_id")
	} else {
		selects = append(selects, "false", "NULL::timestamptz")
	}
	// A plain SELECT: no FOR SHARE, which would mark Django's rows.
	query := "SELECT " + strings.Join(selects, ", ") + "\nFROM django_celery_beat_periodictask AS t\n" +
		strings.Join(joins, "\n") + "\nORDER BY t.id"
	rows, err = tx.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("import django-celery-beat: read periodic tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (celeryTask, error) {
		var t celeryTask
		err := row.Scan(&t.id, &t.name, &t.task, &t.args, &t.kwargs, &t.queue, &t.exchange, &t.routingKey, &t.headers,
			&t.priority, &t.expires, &t.expireSeconds, &t.oneOff, &t.startTime, &t.enabled, &t.lastRunAt,
			&t.totalRunCount, &t.description,
			&t.hasInterval, &t.every, &t.period,
			&t.hasCrontab, &t.minute, &t.hour, &t.dom, &t.moy, &t.dow, &t.timeZone,
			&t.hasSolar, &t.solarEvent, &t.latitude, &t.longit,
			&t.hasClocked, &t.clockedTime)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("import django-celery-beat: read periodic tasks: %w", err)
	}
	return tasks, nil
}

// celeryScheduleNames returns the schedule name of each task, by id. A
// valid name is kept; the others are sanitised (sanitiseScheduleName) and,
// when that makes them equal to another task's, the later task (higher
// id) gets its id appended, so that the mapping depends only on the tasks
// and a task created later in Django never renames an earlier one.
func celeryScheduleNames(tasks []celeryTask) map[int64]string {
	names := make(map[int64]string, len(tasks))
	taken := map[string]bool{}
	for _, t := range tasks {
		if scheduleNameRE.MatchString(t.name) {
			names[t.id] = t.name
			taken[t.name] = true
		}
	}
	for _, t := range tasks { // by id
		if _, ok := names[t.id]; ok {
			continue
		}
		base := sanitiseScheduleName(t.name)
		if base == "" {
			base = "celery-" + strconv.FormatInt(t.id, 10)
		}
		name := base
		for n := 1; taken[name]; n++ {
			suffix := "-" + strconv.FormatInt(t.id, 10)
			if n > 1 {
				suffix += "-" + strconv.Itoa(n)
			}
			name = strings.TrimRight(base[:min(len(base), NameMaxLen-len(suffix))], "-") + suffix
		}
		names[t.id] = name
		taken[name] = true
	}
	return names
}

// sanitiseScheduleName replaces each run of characters a schedule name may
// not hold with one '-', trims '-' from both ends and cuts the result to
// NameMaxLen: "Mark absent (every 5 min)" becomes
// "Mark-absent-every-5-min".
func sanitiseScheduleName(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		ok := r < 128 && (r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r))
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > NameMaxLen {
		out = strings.TrimRight(out[:NameMaxLen], "-")
	}
	return out
}

// importCeleryTask imports one task in tx.
func (s *Store) importCeleryTask(ctx context.Context, tx pgx.Tx, t *celeryTask, name string, kindOf func(string) (string, bool)) (CeleryImportEntry, error) {
	e := CeleryImportEntry{ID: t.id, CeleryName: t.name, Task: t.task, Action: CelerySkipped}
	kind, ok := kindOf(t.task)
	if !ok {
		e.Reason = fmt.Sprintf("no job kind for task %q (map it in the import's task kinds)", t.task)
		if t.task == celeryBackendCleanup {
			e.Reason = "celery beat's own result-backend cleanup: River deletes finished jobs itself (retention)"
		}
		return e, nil
	}
	e.Kind = kind
	want, notes, reason := s.celerySchedule(t, name, kind)
	if reason != "" {
		e.Reason = reason
		return e, nil
	}
	e.Name, e.Renamed, e.Notes = name, name != t.name, notes

	existing, err := s.Get(ctx, tx, name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return e, err
	default:
		return s.compareCelery(e, want, existing), nil
	}
	created, err := s.Create(ctx, tx, want)
	switch {
	case errors.Is(err, ErrInvalidSchedule):
		e.Reason = err.Error()
		return e, nil
	case errors.Is(err, ErrExists):
		// Created by someone else since the Get (a concurrent import).
		existing, err := s.Get(ctx, tx, name)
		if err != nil {
			return e, err
		}
		return s.compareCelery(e, want, existing), nil
	case err != nil:
		return e, err
	}
	if t.totalRunCount != 0 || t.lastRunAt != nil {
		created, err = scanSchedule(tx.QueryRow(ctx, celeryHistorySQL, name, t.totalRunCount, t.lastRunAt))
		if err != nil {
			return e, scheduleErr(fmt.Sprintf("record the history of schedule %q", name), err)
		}
	}
	e.Action, e.Schedule = CeleryCreated, created
	return e, nil
}

// celeryHistorySQL copies a periodic task's counters into the schedule
// just created from it. next_run_at stays: it is computed from now.
const celeryHistorySQL = `
UPDATE wasso_schedule SET total_run_count = $2, last_run_at = $3
WHERE name = $1
RETURNING ` + scheduleColumns

// compareCelery returns e as CeleryUnchanged or CeleryExists, comparing
// the schedule the task maps to (with the store's defaults) with the one
// stored.
func (s *Store) compareCelery(e CeleryImportEntry, want Schedule, have *Schedule) CeleryImportEntry {
	want = want.withDefaults(s.config.DefaultTimeZone, s.kinds[want.Kind])
	e.Schedule = have
	e.Differs = scheduleDiff(&want, have)
	e.Action = CeleryUnchanged
	if len(e.Differs) > 0 {
		e.Action = CeleryExists
	}
	return e
}

// scheduleDiff names the configuration fields (JSON names) in which a and
// b differ. The time zone of two interval schedules is not compared, as
// it does not matter to them.
func scheduleDiff(a, b *Schedule) []string {
	var out []string
	diff := func(field string, differs bool) {
		if differs {
			out = append(out, field)
		}
	}
	diff("kind", a.Kind != b.Kind)
	diff("args", !jsonEqual(a.Args, b.Args))
	diff("every", a.Every != b.Every)
	diff("cron", a.Cron != b.Cron)
	diff("time_zone", a.TimeZone != b.TimeZone && (a.Every == 0 || b.Every == 0))
	diff("enabled", a.Enabled != b.Enabled)
	diff("queue", a.Queue != b.Queue)
	diff("priority", a.Priority != b.Priority)
	diff("max_attempts", a.MaxAttempts != b.MaxAttempts)
	diff("start_at", !a.StartAt.Equal(b.StartAt))
	diff("expires_at", !a.ExpiresAt.Equal(b.ExpiresAt))
	diff("one_off", a.OneOff != b.OneOff)
	diff("description", a.Description != b.Description)
	diff("missed", a.Missed != b.Missed)
	diff("overlap", a.Overlap != b.Overlap)
	return out
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}

// celerySchedule maps a task to the schedule it becomes, with notes on
// what changed on the way, or returns why it cannot be imported.
func (s *Store) celerySchedule(t *celeryTask, name, kind string) (sched Schedule, notes []string, reason string) {
	var set []string
	for _, k := range []struct {
		name string
		on   bool
	}{{"interval", t.hasInterval}, {"crontab", t.hasCrontab}, {"solar", t.hasSolar}, {"clocked", t.hasClocked}} {
		if k.on {
			set = append(set, k.name)
		}
	}
	switch {
	case len(set) == 0:
		return sched, nil, "no schedule: none of interval, crontab, solar, clocked is set"
	case len(set) > 1:
		return sched, nil, fmt.Sprintf("more than one schedule set (%s)", strings.Join(set, ", "))
	case t.hasSolar:
		return sched, nil, fmt.Sprintf("solar schedule (%s at %s, %s) has no equivalent: schedules run on intervals or cron expressions",
			deref(t.solarEvent), deref(t.latitude), deref(t.longit))
	case t.hasClocked:
		at := "?"
		if t.clockedTime != nil {
			at = FormatSlot(*t.clockedTime)
		}
		return sched, nil, fmt.Sprintf("clocked schedule (once at %s) is not imported: enqueue a job scheduled at that time instead", at)
	}

	if args := strings.TrimSpace(t.args); args != "" && args != "[]" && args != "null" {
		var positional []any
		if err := json.Unmarshal([]byte(args), &positional); err != nil {
			return sched, nil, fmt.Sprintf("args %s are not a JSON list: %v", quoteJSON([]byte(args)), err)
		}
		if len(positional) > 0 {
			return sched, nil, fmt.Sprintf("positional args %s: job args are named; move them into kwargs", quoteJSON([]byte(args)))
		}
	}
	kwargs := strings.TrimSpace(t.kwargs)
	if kwargs == "" || kwargs == "null" {
		kwargs = "{}"
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(kwargs), &obj); err != nil {
		return sched, nil, fmt.Sprintf("kwargs %s are not a JSON object: %v", quoteJSON([]byte(kwargs)), err)
	}

	sched = Schedule{
		Name:        name,
		Kind:        kind,
		Args:        json.RawMessage(kwargs),
		Enabled:     t.enabled,
		OneOff:      t.oneOff,
		Description: t.description,
	}
	if t.startTime != nil {
		sched.StartAt = *t.startTime
	}
	if t.expires != nil {
		sched.ExpiresAt = *t.expires
	}

	if t.hasInterval {
		every, why := celeryInterval(t.every, t.period)
		if why != "" {
			return Schedule{}, nil, why
		}
		sched.Every = every
	} else {
		expr, why := celeryCron(t)
		if why != "" {
			return Schedule{}, nil, why
		}
		sched.Cron, sched.TimeZone = expr, deref(t.timeZone)
	}

	if q := deref(t.queue); q != "" {
		if q == "celery" {
			notes = append(notes, `queue "celery" (Celery's default) → the kind's queue`)
		} else {
			sched.Queue = q
			notes = append(notes, fmt.Sprintf("queue %s: a runner must work it (run.queues)", q))
		}
	}
	if t.priority != nil {
		sched.Priority = celeryPriority(*t.priority)
		notes = append(notes, fmt.Sprintf("celery priority %d → priority %d", *t.priority, sched.Priority))
	}
	if sched.Enabled && sched.OneOff && t.totalRunCount > 0 {
		sched.Enabled = false
		notes = append(notes, fmt.Sprintf("one-off task already ran (total_run_count %d): imported disabled", t.totalRunCount))
	}
	if sched.Enabled && !sched.ExpiresAt.IsZero() && !sched.ExpiresAt.After(s.now()) {
		sched.Enabled = false
		notes = append(notes, fmt.Sprintf("expired at %s: imported disabled", FormatSlot(sched.ExpiresAt)))
	}
	for _, ignored := range []struct {
		field string
		set   bool
		value string
	}{
		{"exchange", deref(t.exchange) != "", deref(t.exchange)},
		{"routing_key", deref(t.routingKey) != "", deref(t.routingKey)},
		{"headers", !emptyJSONObject(deref(t.headers)), deref(t.headers)},
		{"expire_seconds", t.expireSeconds != nil, fmt.Sprint(deref(t.expireSeconds))},
	} {
		if ignored.set {
			notes = append(notes, fmt.Sprintf("%s %s not imported (no equivalent for River jobs)", ignored.field, ignored.value))
		}
	}
	return sched, notes, ""
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func emptyJSONObject(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" || s == "null" {
		return true
	}
	var m map[string]any
	return json.Unmarshal([]byte(s), &m) == nil && len(m) == 0
}

// celeryPriority maps a Celery priority (0 to 255, 0 first, as Celery's
// Redis transport orders them and django-celery-beat's admin describes
// them) to River's 1 (first) to 4, grouping them as kombu's default
// priority steps (0, 3, 6, 9) do.
func celeryPriority(p int64) int {
	switch {
	case p < 3:
		return 1
	case p < 6:
		return 2
	case p < 9:
		return 3
	default:
		return 4
	}
}

// celeryPeriods are IntervalSchedule's periods.
var celeryPeriods = map[string]time.Duration{
	"days":         24 * time.Hour,
	"hours":        time.Hour,
	"minutes":      time.Minute,
	"seconds":      time.Second,
	"microseconds": time.Microsecond,
}

func celeryInterval(every *int64, period *string) (time.Duration, string) {
	unit, ok := celeryPeriods[deref(period)]
	switch {
	case !ok:
		return 0, fmt.Sprintf("interval period %q is not days, hours, minutes, seconds or microseconds", deref(period))
	case every == nil || *every < 1:
		return 0, fmt.Sprintf("interval every %d %s is not positive", deref(every), deref(period))
	case *every > math.MaxInt64/int64(unit):
		return 0, fmt.Sprintf("interval every %d %s is too long", *every, *period)
	}
	return time.Duration(*every) * unit, ""
}

// celeryCronField is one field of a crontab: its column, the values
// Celery accepts and its position in a cron expression.
type celeryCronField struct {
	column   string
	min, max int
}

var celeryCronFields = [5]celeryCronField{
	{"minute", 0, 59},
	{"hour", 0, 23},
	{"day_of_month", 1, 31},
	{"month_of_year", 1, 12},
	{"day_of_week", 0, 6},
}

// celeryCron returns the five-field cron expression of the task's crontab,
// or why there is none.
func celeryCron(t *celeryTask) (string, string) {
	specs := [5]string{deref(t.minute), deref(t.hour), deref(t.dom), deref(t.moy), deref(t.dow)}
	var fields [5]string
	var full [5]bool
	for i, f := range celeryCronFields {
		field, all, err := cronFieldOfCelery(specs[i], i, f)
		if err != nil {
			return "", fmt.Sprintf("crontab %s %q: %v", f.column, specs[i], err)
		}
		fields[i], full[i] = field, all
	}
	if !full[2] && !full[4] {
		return "", fmt.Sprintf("crontab restricts both day_of_month %q and day_of_week %q: Celery runs it on days matching both, a cron expression on days matching either",
			specs[2], specs[4])
	}
	return strings.Join(fields[:], " "), ""
}

// cronFieldOfCelery reads a crontab field the way Celery's crontab_parser
// does and writes it for cron: "*" when it matches every value (so that
// day-of-month and day-of-week combine as Celery combines them), the
// field as written when cron reads it the same, else the values as a list
// of numbers and ranges.
func cronFieldOfCelery(spec string, pos int, f celeryCronField) (string, bool, error) {
	set, err := parseCeleryField(spec, f)
	if err != nil {
		return "", false, err
	}
	all := bitsBetween(f.min, f.max)
	if set == all {
		return "*", true, nil
	}
	written := strings.ToLower(strings.ReplaceAll(spec, " ", ""))
	if bits, err := cronFieldBits(written, pos); err == nil && bits == set {
		return written, false, nil
	}
	return listOfBits(set, f.min, f.max), false, nil
}

func bitsBetween(lo, hi int) uint64 {
	var b uint64
	for v := lo; v <= hi; v++ {
		b |= 1 << uint(v)
	}
	return b
}

// cronFieldBits returns the values the cron parser of timetables
// (parseCron) reads field at position pos as, bit n for the value n: the
// values v for which an expression with field at pos and * elsewhere
// fires at an instant whose field pos is v.
func cronFieldBits(field string, pos int) (uint64, error) {
	parts := []string{"*", "*", "*", "*", "*"}
	parts[pos] = field
	spec, err := parseCron(strings.Join(parts, " "))
	if err != nil {
		return 0, err
	}
	f := celeryCronFields[pos]
	var bits uint64
	for v := f.min; v <= f.max; v++ {
		// January 2024 has 31 days and starts on a Monday: the 7th is a
		// Sunday.
		t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		switch pos {
		case 0:
			t = t.Add(time.Duration(v) * time.Minute)
		case 1:
			t = t.Add(time.Duration(v) * time.Hour)
		case 2:
			t = t.AddDate(0, 0, v-1)
		case 3:
			t = t.AddDate(0, v-1, 0)
		case 4:
			t = t.AddDate(0, 0, 6+v)
		}
		if spec.Next(t.Add(-time.Second)).Equal(t) {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

// listOfBits writes a set of values as cron does: "1-5,7,9-10".
func listOfBits(set uint64, lo, hi int) string {
	var parts []string
	for v := lo; v <= hi; v++ {
		if set&(1<<uint(v)) == 0 {
			continue
		}
		end := v
		for end+1 <= hi && set&(1<<uint(end+1)) != 0 {
			end++
		}
		switch end - v {
		case 0:
			parts = append(parts, strconv.Itoa(v))
		case 1:
			parts = append(parts, strconv.Itoa(v), strconv.Itoa(end))
		default:
			parts = append(parts, strconv.Itoa(v)+"-"+strconv.Itoa(end))
		}
		v = end
	}
	return strings.Join(parts, ",")
}

// parseCeleryField returns the values of a crontab field as Celery's
// crontab_parser reads them: comma-separated parts, each "*", "*/step",
// "a-b" or "a-b/step" (a range whose end is below its start wraps around:
// day_of_week "fri-mon" is Friday to Monday) or a single value; values
// are numbers, or month and weekday names (their first three letters).
// Sunday is 0 or, as django-celery-beat's admin allows, 7.
func parseCeleryField(spec string, f celeryCronField) (uint64, error) {
	if strings.TrimSpace(spec) == "" {
		return 0, errors.New("empty")
	}
	var set uint64
	for part := range strings.SplitSeq(spec, ",") {
		values, err := expandCeleryPart(strings.TrimSpace(part), f)
		if err != nil {
			return 0, err
		}
		for _, v := range values {
			if f.column == "day_of_week" {
				v %= 7
			}
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func expandCeleryPart(part string, f celeryCronField) ([]int, error) {
	if part == "" {
		return nil, errors.New("empty part")
	}
	body, stepText, hasStep := strings.Cut(part, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("step %q is not a positive number", stepText)
		}
		step = n
	}
	var values []int
	hi := f.max
	if f.column == "day_of_week" {
		hi = 7 // Sunday again
	}
	if body == "*" {
		for v := f.min; v <= f.max; v++ {
			values = append(values, v)
		}
	} else if from, to, isRange := strings.Cut(body, "-"); isRange {
		a, err := celeryValue(from, f, hi)
		if err != nil {
			return nil, err
		}
		b, err := celeryValue(to, f, hi)
		if err != nil {
			return nil, err
		}
		if b < a { // wraps around
			for v := a; v <= f.max; v++ {
				values = append(values, v)
			}
			a = f.min
		}
		for v := a; v <= b; v++ {
			values = append(values, v)
		}
	} else {
		if hasStep {
			return nil, fmt.Errorf("%q: a step follows * or a range", part)
		}
		v, err := celeryValue(body, f, hi)
		if err != nil {
			return nil, err
		}
		values = []int{v}
	}
	var out []int
	for i := 0; i < len(values); i += step {
		out = append(out, values[i])
	}
	return out, nil
}

var (
	celeryMonths   = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	celeryWeekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
)

func celeryValue(s string, f celeryCronField, hi int) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		abbr := strings.ToLower(s[:min(len(s), 3)])
		if i := slices.Index(celeryMonths, abbr); i >= 0 && len(s) >= 3 {
			v = i + 1
		} else if i := slices.Index(celeryWeekdays, abbr); i >= 0 && len(s) >= 3 {
			v = i
		} else {
			return 0, fmt.Errorf("%q is not a number or a month or weekday name", s)
		}
	}
	if v < f.min || v > hi {
		return 0, fmt.Errorf("%d is not between %d and %d", v, f.min, hi)
	}
	return v, nil
}
