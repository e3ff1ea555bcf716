package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// addTestScheduleKinds, when set, lists job kinds of a test build that
// schedules may name besides the attendance kinds (faultinject.go sets
// it, for the kinds addTestWorkers registers): the store refuses a
// schedule of a kind it was not given, since no worker would run it.
var addTestScheduleKinds func() []schedule.Kind

// scheduleKinds are the job kinds schedules may name: the attendance
// kinds, and a test build's own.
func scheduleKinds() []schedule.Kind {
	kinds := wassoriver.ScheduleKinds()
	if addTestScheduleKinds != nil {
		kinds = append(kinds, addTestScheduleKinds()...)
	}
	return kinds
}

// newScheduleStore returns a store on the configured schedules, logging
// to the runner's logger. inserter may be nil for commands that enqueue
// nothing (all but run-now and backfill).
func (a *app) newScheduleStore(inserter schedule.Inserter) (*schedule.Store, error) {
	config := a.cfg.scheduleStoreConfig()
	config.Logger = a.logger
	if inserter != nil {
		config.Inserter = inserter
	}
	store, err := schedule.NewStore(config)
	if err != nil {
		// The keys were checked when the configuration loaded.
		return nil, &ConfigError{Key: "schedules", Err: err}
	}
	return store, nil
}

// withScheduleStore opens the pool and a store for a schedule subcommand;
// with enqueue, the store enqueues through an insert-only River client.
func (a *app) withScheduleStore(ctx context.Context, enqueue bool, fn func(pool *pgxpool.Pool, store *schedule.Store) error) error {
	pool, err := a.openPool(ctx, poolOptions{})
	if err != nil {
		return err
	}
	defer pool.Close()
	var inserter schedule.Inserter
	if enqueue {
		client, err := a.controlClient(pool)
		if err != nil {
			return err
		}
		inserter = client
	}
	store, err := a.newScheduleStore(inserter)
	if err != nil {
		return err
	}
	return fn(pool, store)
}

// scheduleFieldFlags name, for each field of a *schedule.FieldError,
// the flag (or argument) of the schedule commands that sets it, so that a
// refusal names what the operator typed.
var scheduleFieldFlags = map[string]string{
	"name":                 "NAME",
	"kind":                 "--kind",
	"args":                 "--args",
	"every":                "--every",
	"cron":                 "--cron",
	"time_zone":            "--tz",
	"queue":                "--queue",
	"priority":             "--priority",
	"max_attempts":         "--max-attempts",
	"start_at":             "--start",
	"expires_at":           "--expires",
	"missed":               "--missed",
	"overlap":              "--overlap",
	"catchup_window":       "--catchup-window",
	"jitter":               "--jitter",
	"pause_after_failures": "--pause-after-failures",
	"from":                 "--from",
	"to":                   "--to",
	"paused.by":            "--by",
	"paused.note":          "--note",
}

// scheduleError words an error of the store for the command line: a
// field the store refuses is a usage error naming the flag (exit 2, as is
// a name already taken), an unknown schedule a failure (exit 1, as for
// jobs cancel of an unknown id).
func scheduleError(name string, err error) error {
	var fieldErr *schedule.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fieldErr):
		flag := scheduleFieldFlags[fieldErr.Field]
		if flag == "" {
			flag = fieldErr.Field
		}
		return usagef("invalid schedule %q: %s: %v", name, flag, fieldErr.Err)
	case errors.Is(err, schedule.ErrExists):
		return usagef("schedule %q already exists (change it with wasso-runner schedule update)", name)
	case errors.Is(err, schedule.ErrNotFound):
		return fmt.Errorf("no such schedule: %s", name)
	default:
		return err
	}
}

// oneName is the argument check of the commands that take a schedule
// name: a usage error (exit 2) otherwise.
func oneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("%s takes one schedule name, got %d arguments (see %s --help)", cmd.CommandPath(), len(args), cmd.CommandPath())
	}
	return nil
}

func (a *app) scheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "List, add, update, enable, disable, remove, run and backfill stored schedules (django-celery-beat)",
		Long: `schedule manages the schedules stored in Postgres (the wasso_schedule table),
what django-celery-beat kept in its PeriodicTask tables: a job kind and its
args, enqueued every interval (--every 5m) or on a cron expression
(--cron "0 9 * * 1-5", in the schedule's --tz). The elected leader among the
runners enqueues one job per slot; every change here reaches it at once
(NOTIFY), without a restart.

The attendance sweep is the schedule attendance-sweep, created once by
setup (or by the first run) every sweep.interval; edit it here, and it stays
as you left it.

Refused changes (a bad cron expression, an unknown kind or time zone, args
that do not fit the kind, a name already taken) write nothing and exit 2; an
unknown schedule name exits 1.`,
		Args: cobra.ArbitraryArgs,
		RunE: subcommandRequired,
	}
	cmd.AddCommand(
		a.scheduleListCmd(),
		a.scheduleShowCmd(), // cmd_schedule_show.go
		a.scheduleAddCmd(),
		a.scheduleUpdateCmd(),
		a.scheduleToggleCmd(true),
		a.scheduleToggleCmd(false),
		a.scheduleRemoveCmd(),
		a.scheduleRunNowCmd(),
		a.scheduleBackfillCmd(),
		newScheduleImportCmd(a), // cmd_schedule_import.go: django-celery-beat's periodic tasks
	)
	return cmd
}

// timetable describes when a schedule runs: "every 5m0s" or
// "cron 0 9 * * *".
func timetable(s *schedule.Schedule) string {
	if s.Cron != "" {
		return "cron " + s.Cron
	}
	return "every " + s.Every.String()
}

// fmtInZone prints an instant in a schedule's own zone, to the minute
// unless it has seconds: "2026-11-27 09:00 KST". The zero time prints
// as "-".
func fmtInZone(t time.Time, zone string) string {
	if t.IsZero() {
		return "-"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc = time.UTC
	}
	local := t.In(loc)
	layout := "2006-01-02 15:04 MST"
	if local.Second() != 0 || local.Nanosecond() != 0 {
		layout = "2006-01-02 15:04:05 MST"
	}
	return local.Format(layout)
}

// scheduleJSON is a schedule as the CLI prints it with --json: every field
// of schedule.Schedule's JSON, with the optional ones present as null
// when unset (so that scripts need not test for their absence), and
// "timetable" and the next and last runs in the schedule's zone.
func scheduleJSON(s *schedule.Schedule) map[string]json.RawMessage {
	raw, _ := json.Marshal(s)
	out := map[string]json.RawMessage{}
	_ = json.Unmarshal(raw, &out)
	for _, key := range []string{"every", "cron", "args", "start_at", "expires_at", "last_run_at", "last_job_id", "next_run_at", "paused"} {
		if _, ok := out[key]; !ok {
			out[key] = json.RawMessage("null")
		}
	}
	str := func(v string) json.RawMessage {
		if v == "-" {
			return json.RawMessage("null")
		}
		b, _ := json.Marshal(v)
		return b
	}
	out["timetable"] = str(timetable(s))
	out["next_run_local"] = str(fmtInZone(s.NextRunAt, s.TimeZone))
	out["last_run_local"] = str(fmtInZone(s.LastRunAt, s.TimeZone))
	return out
}

func schedulesJSON(list []schedule.Schedule) []map[string]json.RawMessage {
	out := make([]map[string]json.RawMessage, 0, len(list))
	for i := range list {
		out = append(out, scheduleJSON(&list[i]))
	}
	return out
}

// printSchedules writes the schedules as a table, times in each
// schedule's own zone.
func printSchedules(w io.Writer, list []schedule.Schedule) error {
	t := newTable(w, "NAME", "KIND", "TIMETABLE", "ZONE", "ENABLED", "LAST RUN", "NEXT RUN", "RUNS", "SKIPPED", "MISSED", "ON MISSED", "ON OVERLAP", "NOTE")
	for i := range list {
		s := &list[i]
		t.row(s.Name, s.Kind, timetable(s), s.TimeZone, yesNo(s.Enabled), fmtInZone(s.LastRunAt, s.TimeZone),
			fmtInZone(s.NextRunAt, s.TimeZone), s.TotalRunCount, s.SkippedCount, s.MissedCount, s.Missed, s.Overlap,
			shortNote(s.Paused))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(w, "(no schedules: wasso-runner setup seeds the attendance sweep)")
	}
	return nil
}

// describeSchedule is the one line the commands that change a schedule
// print about it.
func describeSchedule(s *schedule.Schedule) string {
	line := fmt.Sprintf("%s: %s %s, %s", s.Name, s.Kind, timetable(s), s.TimeZone)
	switch {
	case !s.Enabled:
		line += ", disabled"
	case s.NextRunAt.IsZero():
		line += ", no run left"
	default:
		line += ", next run " + fmtInZone(s.NextRunAt, s.TimeZone)
	}
	return line
}

func (a *app) scheduleListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored schedules with their last and next runs (in each schedule's zone) and counters",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withScheduleStore(ctx, false, func(pool *pgxpool.Pool, store *schedule.Store) error {
				list, err := store.List(ctx, pool)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, schedulesJSON(list))
				}
				return printSchedules(a.stdout, list)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// scheduleFlags are the flags of schedule add and schedule update.
type scheduleFlags struct {
	kind, every, cron, tz, args, queue, missed, overlap string
	start, expires, description                         string
	catchupWindow, jitter                               time.Duration
	priority, maxAttempts, pauseAfterFailures           int
	oneOff, disabled                                    bool
	asJSON                                              bool
}

func (f *scheduleFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.kind, "kind", "", "job kind enqueued, e.g. attendance.sweep")
	fl.StringVar(&f.every, "every", "", "interval between runs, 1s to 744h, e.g. 5m (or --cron)")
	fl.StringVar(&f.cron, "cron", "", `cron expression read in --tz, e.g. "0 9 * * 1-5" or @daily (or --every)`)
	fl.StringVar(&f.tz, "tz", "", "IANA time zone the cron expression and local --start/--expires are read in (default: key schedules.time_zone)")
	fl.StringVar(&f.args, "args", "", `job args, a JSON object that fits the kind, e.g. '{"lookback": 86400000000000}' (default {})`)
	fl.StringVar(&f.queue, "queue", "", "River queue of the jobs (default: the kind's, else default)")
	fl.IntVar(&f.priority, "priority", 0, "River priority of the jobs, 1 (first) to 4 (default: the kind's, else 1)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "attempts per job (default: the kind's, else 25)")
	fl.StringVar(&f.missed, "missed", "", "slots missed while no leader ran: once (one job, the default), skip (none) or all")
	fl.StringVar(&f.overlap, "overlap", "", "a slot while the previous job is unfinished: skip (the default), allow, buffer_one (run once more when it finishes) or cancel_other (cancel it, then run)")
	fl.DurationVar(&f.catchupWindow, "catchup-window", 0, "how old a missed slot may be and still run, e.g. 10m (0: the default rule of --missed)")
	fl.DurationVar(&f.jitter, "jitter", 0, "delay each run by a fixed amount up to this, drawn from the name and the slot, e.g. 30s")
	fl.IntVar(&f.pauseAfterFailures, "pause-after-failures", 0, "pause the schedule, with a note, once its last N jobs all failed (0: never)")
	fl.StringVar(&f.start, "start", "", `first instant a run may fall on: RFC 3339, or "2006-01-02 15:04" in --tz; anchors --every`)
	fl.StringVar(&f.expires, "expires", "", `last instant a run may fall on (then the schedule disables itself): RFC 3339, or "2006-01-02 15:04" in --tz`)
	fl.BoolVar(&f.oneOff, "one-off", false, "run once, then disable")
	fl.BoolVar(&f.disabled, "disabled", false, "disabled: kept, not run until enabled")
	fl.StringVar(&f.description, "description", "", "free text for people")
	fl.BoolVar(&f.asJSON, "json", false, "print the schedule as JSON")
}

// everyValue parses --every. A zero or negative interval is refused here: to
// the store, zero means "no interval".
func (f *scheduleFlags) everyValue() (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(f.every))
	if err != nil {
		return 0, fmt.Errorf("--every %q is not a duration (write it with a unit, e.g. 30s, 5m, 1h)", f.every)
	}
	if d <= 0 {
		return 0, fmt.Errorf("--every %s: must be between %s and %s", d, schedule.EveryMin, schedule.EveryMax)
	}
	return d, nil
}

// loadZone returns the zone of --tz, refused here rather than by the store
// since it is needed to read a local --start or --expires.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("--tz %q: name an IANA time zone such as UTC or Asia/Seoul", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("--tz %q: unknown time zone (use an IANA name such as Asia/Seoul or UTC)", name)
	}
	return loc, nil
}

// localLayouts are the local forms --start, --expires, --from and --to
// accept besides RFC 3339, read in the schedule's zone.
var localLayouts = []string{"2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"}

// parseInstant reads an RFC 3339 instant, or a local time in zone. The
// empty string is the zero time.
func parseInstant(flag, value, zone string) (time.Time, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, value); err == nil {
		return t, nil
	}
	loc, err := loadZone(zone)
	if err != nil {
		return time.Time{}, err
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, value, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`%s %q: not RFC 3339 (2026-11-27T09:00:00+09:00) nor a local "2006-01-02 15:04" in %s`, flag, value, zone)
}

// checkTimetable checks that --every and --cron are not both given and,
// when required (add), that one is.
func (f *scheduleFlags) checkTimetable(cmd *cobra.Command, required bool) error {
	every, cron := cmd.Flags().Changed("every"), cmd.Flags().Changed("cron")
	switch {
	case every && cron:
		return errors.New("give --every or --cron, not both")
	case required && !every && !cron:
		return errors.New("give --every DURATION or --cron EXPR")
	}
	return nil
}

// schedule builds the schedule schedule add creates. Its errors are usage
// errors naming the schedule and the flag.
func (f *scheduleFlags) schedule(cmd *cobra.Command, name, defaultZone string) (schedule.Schedule, error) {
	s, err := f.buildSchedule(cmd, name, defaultZone)
	if err != nil {
		return s, usagef("invalid schedule %q: %v", name, err)
	}
	return s, nil
}

func (f *scheduleFlags) buildSchedule(cmd *cobra.Command, name, defaultZone string) (schedule.Schedule, error) {
	s := schedule.Schedule{
		Name: name, Kind: f.kind, Cron: f.cron, TimeZone: f.tz, Queue: f.queue,
		Priority: f.priority, MaxAttempts: f.maxAttempts, OneOff: f.oneOff, Enabled: !f.disabled,
		Description: f.description, Missed: schedule.MissedPolicy(f.missed), Overlap: schedule.OverlapPolicy(f.overlap),
		CatchupWindow: f.catchupWindow, Jitter: f.jitter, PauseAfterFailures: f.pauseAfterFailures,
	}
	if !cmd.Flags().Changed("kind") || strings.TrimSpace(f.kind) == "" {
		return s, errors.New("--kind is required (e.g. --kind attendance.sweep)")
	}
	if err := f.checkTimetable(cmd, true); err != nil {
		return s, err
	}
	if cmd.Flags().Changed("every") {
		every, err := f.everyValue()
		if err != nil {
			return s, err
		}
		s.Every = every
	}
	if cmd.Flags().Changed("cron") && strings.TrimSpace(f.cron) == "" {
		return s, errors.New("--cron: must not be empty")
	}
	if cmd.Flags().Changed("args") {
		s.Args = json.RawMessage(f.args)
	}
	zone := defaultZone
	if cmd.Flags().Changed("tz") {
		if _, err := loadZone(f.tz); err != nil {
			return s, err
		}
		zone = f.tz
	}
	var err error
	if s.StartAt, err = parseInstant("--start", f.start, zone); err != nil {
		return s, err
	}
	if s.ExpiresAt, err = parseInstant("--expires", f.expires, zone); err != nil {
		return s, err
	}
	return s, nil
}

// update builds the ScheduleUpdate of schedule update: only the flags
// given change. zone is the schedule's stored zone, for a local --start
// or --expires without --tz. Its errors are usage errors naming the
// schedule and the flag.
func (f *scheduleFlags) update(cmd *cobra.Command, name, zone string) (schedule.Update, error) {
	u, err := f.buildUpdate(cmd, zone)
	if err != nil {
		return u, usagef("invalid schedule %q: %v", name, err)
	}
	return u, nil
}

func (f *scheduleFlags) buildUpdate(cmd *cobra.Command, zone string) (schedule.Update, error) {
	var u schedule.Update
	changed := cmd.Flags().Changed
	if err := f.checkTimetable(cmd, false); err != nil {
		return u, err
	}
	str := func(flag string, v *string) *string {
		if changed(flag) {
			return v
		}
		return nil
	}
	u.Kind = str("kind", &f.kind)
	u.Queue = str("queue", &f.queue)
	u.Description = str("description", &f.description)
	if changed("cron") {
		if strings.TrimSpace(f.cron) == "" {
			return u, errors.New("--cron: must not be empty (give --every to make it an interval schedule)")
		}
		u.Cron = &f.cron
	}
	if changed("every") {
		every, err := f.everyValue()
		if err != nil {
			return u, err
		}
		u.Every = &every
	}
	if changed("tz") {
		if _, err := loadZone(f.tz); err != nil {
			return u, err
		}
		u.TimeZone, zone = &f.tz, f.tz
	}
	if changed("args") {
		args := json.RawMessage(f.args)
		u.Args = &args
	}
	if changed("priority") {
		u.Priority = &f.priority
	}
	if changed("max-attempts") {
		u.MaxAttempts = &f.maxAttempts
	}
	if changed("missed") {
		m := schedule.MissedPolicy(f.missed)
		u.Missed = &m
	}
	if changed("overlap") {
		o := schedule.OverlapPolicy(f.overlap)
		u.Overlap = &o
	}
	if changed("catchup-window") {
		u.CatchupWindow = &f.catchupWindow
	}
	if changed("jitter") {
		u.Jitter = &f.jitter
	}
	if changed("pause-after-failures") {
		u.PauseAfterFailures = &f.pauseAfterFailures
	}
	if changed("one-off") {
		u.OneOff = &f.oneOff
	}
	if changed("disabled") {
		enabled := !f.disabled
		u.Enabled = &enabled
	}
	// An empty --start or --expires clears it.
	for _, t := range []struct {
		flag  string
		value string
		dst   **time.Time
	}{{"start", f.start, &u.StartAt}, {"expires", f.expires, &u.ExpiresAt}} {
		if !changed(t.flag) {
			continue
		}
		instant, err := parseInstant("--"+t.flag, t.value, zone)
		if err != nil {
			return u, err
		}
		*t.dst = &instant
	}
	if u == (schedule.Update{}) {
		return u, errors.New("nothing to update: give at least one flag (see wasso-runner schedule update --help)")
	}
	return u, nil
}

func (a *app) printSchedule(s *schedule.Schedule, asJSON bool, verb string) error {
	if asJSON {
		return printJSON(a.stdout, scheduleJSON(s))
	}
	fmt.Fprintf(a.stdout, "%s schedule %s\n", verb, describeSchedule(s))
	return nil
}

func (a *app) scheduleAddCmd() *cobra.Command {
	var f scheduleFlags
	cmd := &cobra.Command{
		Use:   "add NAME --kind KIND (--every DURATION | --cron EXPR) [flags]",
		Short: "Create a schedule (refused, with nothing written, if the name is taken or a field is invalid)",
		Example: `  wasso-runner schedule add nightly-sweep --kind attendance.sweep --cron "0 3 * * *" --tz Asia/Seoul
  wasso-runner schedule add sweep-10m --kind attendance.sweep --every 10m --args '{"lookback": 172800000000000}'`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			sched, err := f.schedule(cmd, name, a.cfg.Schedules.TimeZone.String())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withScheduleStore(ctx, false, func(pool *pgxpool.Pool, store *schedule.Store) error {
				created, err := store.Create(ctx, pool, sched)
				if err != nil {
					return scheduleError(name, err)
				}
				return a.printSchedule(created, f.asJSON, "added")
			})
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) scheduleUpdateCmd() *cobra.Command {
	var f scheduleFlags
	cmd := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "Change the fields of a schedule that the flags given name (--every replaces --cron and the reverse)",
		Long: `update changes only the fields whose flags are given. --every turns a cron
schedule into an interval schedule and --cron the reverse. An empty --start or
--expires clears it; --disabled=false enables. A new timetable (--every,
--cron, --tz, --start) takes effect from now: slots of the old one that have
not run are dropped, not counted missed.`,
		Example: `  wasso-runner schedule update attendance-sweep --every 10m
  wasso-runner schedule update nightly-sweep --cron "30 4 * * *" --missed skip`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return a.withScheduleStore(ctx, false, func(pool *pgxpool.Pool, store *schedule.Store) error {
				// The stored zone reads a local --start or --expires given
				// without --tz.
				zone := a.cfg.Schedules.TimeZone.String()
				if cmd.Flags().Changed("start") || cmd.Flags().Changed("expires") {
					current, err := store.Get(ctx, pool, name)
					if err != nil {
						return scheduleError(name, err)
					}
					zone = current.TimeZone
				}
				update, err := f.update(cmd, name, zone)
				if err != nil {
					return err
				}
				updated, err := store.Update(ctx, pool, name, update)
				if err != nil {
					return scheduleError(name, err)
				}
				return a.printSchedule(updated, f.asJSON, "updated")
			})
		},
	}
	f.register(cmd)
	return cmd
}

// scheduleToggleCmd is schedule enable (enable true) or schedule disable.
func (a *app) scheduleToggleCmd(enable bool) *cobra.Command {
	var (
		asJSON   bool
		note, by string
	)
	use, short := "disable", "Stop running a schedule, with a note saying why; it keeps its settings and counters, and jobs already enqueued still run"
	if enable {
		use, short = "enable", "Run a schedule again, from its next slot on (slots that passed while it was disabled are not run); clears its pause note"
	}
	cmd := &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			pause, err := pauseNoteFlags(cmd, by, note)
			if err != nil {
				return usagef("invalid disable of %q: %v", name, err)
			}
			return a.withScheduleStore(ctx, false, func(pool *pgxpool.Pool, store *schedule.Store) error {
				var s *schedule.Schedule
				switch {
				case enable:
					s, err = store.Enable(ctx, pool, name)
				case pause == nil:
					// No --note or --by: who disabled it is recorded
					// unless it already was, whose note stays.
					s, err = store.Get(ctx, pool, name)
					if err == nil && s.Enabled {
						s, err = store.Pause(ctx, pool, name, schedule.PauseNote{By: osUser()})
					}
				default:
					s, err = store.Pause(ctx, pool, name, *pause)
				}
				if err != nil {
					return scheduleError(name, err)
				}
				return a.printSchedule(s, asJSON, use+"d")
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the schedule as JSON")
	if !enable {
		cmd.Long = `disable stops running a schedule: it keeps its settings and counters, its
next run is cleared, and jobs already enqueued still run. It records a pause
note, shown by schedule list, schedule show and the schedules page: who
(--by, default the OS user), why (--note) and when. Disabling a disabled
schedule with --note or --by replaces its note; enable clears it.`
		cmd.Example = `  wasso-runner schedule disable nightly-sweep --note "club closed until April"`
		cmd.Flags().StringVar(&note, "note", "", fmt.Sprintf("why the schedule is paused, one line of up to %d characters", schedule.PauseNoteMaxLen))
		cmd.Flags().StringVar(&by, "by", "", "who pauses it (default: the OS user, $USER)")
	}
	return cmd
}

// pauseNoteFlags returns the note of schedule disable's --note and --by,
// or nil when neither is given. --by defaults to the OS user; given, it
// must not be blank.
func pauseNoteFlags(cmd *cobra.Command, by, note string) (*schedule.PauseNote, error) {
	changed := cmd.Flags().Changed
	if !changed("note") && !changed("by") {
		return nil, nil
	}
	p := &schedule.PauseNote{By: osUser(), Note: strings.TrimSpace(note)}
	if changed("by") {
		if p.By = strings.TrimSpace(by); p.By == "" {
			return nil, errors.New("--by: must not be empty (leave it out for the OS user)")
		}
	}
	return p, nil
}

// osUser is who runs the command: $USER, else the OS's name for the
// process's user, else empty.
func osUser() string {
	if u := strings.TrimSpace(os.Getenv("USER")); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// shortNote is a pause note as schedule list shows it: who and the start
// of why.
func shortNote(p *schedule.PauseNote) string {
	if p == nil || (p.By == "" && p.Note == "") {
		return "-"
	}
	const maxLen = 30
	text := p.Note
	if r := []rune(text); len(r) > maxLen {
		text = string(r[:maxLen-1]) + "…"
	}
	switch {
	case p.By == "":
		return text
	case text == "":
		return "by " + p.By
	default:
		return p.By + ": " + text
	}
}

func (a *app) scheduleRemoveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Delete a schedule and its slot history; jobs already enqueued are not touched",
		Long: `remove deletes a schedule and its slot history. Jobs it already enqueued are
not touched (cancel them with wasso-runner jobs cancel). A default schedule
(attendance-sweep) removed here stays removed: setup and run seed it only
once. To stop a schedule for a while, disable it instead.`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return a.withScheduleStore(ctx, false, func(pool *pgxpool.Pool, store *schedule.Store) error {
				if err := store.Delete(ctx, pool, name); err != nil {
					return scheduleError(name, err)
				}
				line := "removed schedule " + name + " (jobs already enqueued are not touched)"
				seeded, err := schedule.SeedHistory(ctx, pool)
				if err != nil {
					return err
				}
				if _, ok := seeded[name]; ok {
					line += "; it is a default schedule, and setup and run will not create it again"
				}
				fmt.Fprintln(a.stdout, line)
				return nil
			})
		},
	}
	return cmd
}

func (a *app) scheduleRunNowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run-now NAME",
		Short: "Enqueue one job of a schedule now, enabled or not (celery's run task now); its next run does not move",
		Args:  oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return a.withScheduleStore(ctx, true, func(pool *pgxpool.Pool, store *schedule.Store) error {
				run, err := store.RunNow(ctx, pool, name)
				if err != nil {
					return scheduleError(name, err)
				}
				if asJSON {
					return printJSON(a.stdout, map[string]any{"schedule": name, "job_id": run.JobID, "slot": schedule.FormatSlot(run.Slot)})
				}
				fmt.Fprintf(a.stdout, "enqueued job %d of schedule %s (slot %s)\n", run.JobID, name, schedule.FormatSlot(run.Slot))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) scheduleBackfillCmd() *cobra.Command {
	var (
		from, to string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "backfill NAME --from T [--to T]",
		Short: "Enqueue a job for every slot of a schedule in [--from, --to] that has none yet (each slot once, however often run)",
		Long: `backfill enqueues one job for every slot of the schedule between --from and
--to (default now) that has no job yet, whether the schedule is enabled or
not: to make up for an outage of a schedule whose missed policy ran fewer
jobs. Slots already run (by the scheduler, run-now or an earlier backfill)
are counted, not enqueued again. T is RFC 3339, or a local
"2006-01-02 15:04" in the schedule's zone; --to may not be in the future.`,
		Example: `  wasso-runner schedule backfill nightly-sweep --from "2026-11-20 00:00" --to "2026-11-27 00:00"`,
		Args:    oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !cmd.Flags().Changed("from") {
				return usagef("%s needs --from (see %s --help)", cmd.CommandPath(), cmd.CommandPath())
			}
			ctx := cmd.Context()
			return a.withScheduleStore(ctx, true, func(pool *pgxpool.Pool, store *schedule.Store) error {
				sched, err := store.Get(ctx, pool, name)
				if err != nil {
					return scheduleError(name, err)
				}
				fromT, err := parseInstant("--from", from, sched.TimeZone)
				if err != nil {
					return usagef("invalid backfill of %q: %v", name, err)
				}
				toT := time.Now()
				if cmd.Flags().Changed("to") {
					if toT, err = parseInstant("--to", to, sched.TimeZone); err != nil {
						return usagef("invalid backfill of %q: %v", name, err)
					}
				}
				if fromT.IsZero() {
					return usagef("invalid backfill of %q: --from: must not be empty", name)
				}
				// One transaction enqueues every slot, so there is no
				// progress to show as it goes: a backfill that takes more
				// than progressQuiet logs a start line and a finish line.
				finish := slowNotice(a.logger, progressQuiet, "backfill running", "schedule", name, "from", fromT, "to", toT)
				res, err := store.Backfill(ctx, pool, name, fromT, toT)
				if err != nil {
					finish("backfill failed", "schedule", name, "error", err.Error())
					return scheduleError(name, err)
				}
				finish("backfill done", "schedule", name, "enqueued", len(res.Enqueued), "skipped", res.Skipped)
				if asJSON {
					enqueued := make([]map[string]any, 0, len(res.Enqueued))
					for _, r := range res.Enqueued {
						enqueued = append(enqueued, map[string]any{"slot": schedule.FormatSlot(r.Slot), "job_id": r.JobID})
					}
					return printJSON(a.stdout, map[string]any{"schedule": name, "enqueued": enqueued, "skipped": res.Skipped})
				}
				for _, r := range res.Enqueued {
					fmt.Fprintf(a.stdout, "enqueued job %d for slot %s\n", r.JobID, fmtInZone(r.Slot, sched.TimeZone))
				}
				fmt.Fprintf(a.stdout, "backfilled schedule %s from %s to %s: %d jobs enqueued, %d slots already had a job\n",
					name, fmtInZone(fromT, sched.TimeZone), fmtInZone(toT, sched.TimeZone), len(res.Enqueued), res.Skipped)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", `first instant of the range: RFC 3339, or "2006-01-02 15:04" in the schedule's zone`)
	cmd.Flags().StringVar(&to, "to", "", "last instant of the range (default now)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
