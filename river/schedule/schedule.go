package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/riverqueue/river"
)

// Defaults and bounds of schedules.
const (
	// TimeZoneDefault is the time zone of a schedule that names
	// none, unless StoreConfig.DefaultTimeZone says otherwise.
	TimeZoneDefault = "UTC"
	// EveryMin is the shortest interval of an interval schedule:
	// shorter ones belong in a worker's own loop, not in one River job
	// each.
	EveryMin = time.Second
	// EveryMax is the longest interval of an interval schedule;
	// longer periods are what cron expressions are for.
	EveryMax = 31 * 24 * time.Hour
	// MissedGrace is how late a slot may still be run as on time:
	// a slot is missed once now reaches slot + min(the gap to the
	// following slot, MissedGrace). A pass that comes a few
	// seconds late (a leader election, a slow database) so runs the slot
	// under every missed policy; one that comes after a longer outage
	// applies the schedule's policy.
	MissedGrace = time.Minute
	// NameMaxLen bounds a schedule's name.
	NameMaxLen = 100
	// CatchupWindowMin and CatchupWindowMax bound a schedule's
	// CatchupWindow when it is set.
	CatchupWindowMin = time.Second
	CatchupWindowMax = 366 * 24 * time.Hour
	// JitterMax bounds a schedule's Jitter; it must also be shorter than
	// the gaps between the schedule's slots.
	JitterMax = 24 * time.Hour
	// PauseAfterFailuresMax bounds a schedule's PauseAfterFailures.
	PauseAfterFailuresMax = 100
	// PausedByScheduler is PauseNote.By of a schedule the scheduler
	// paused itself (PauseAfterFailures).
	PausedByScheduler = "scheduler"
	// PauseByMaxLen bounds PauseNote.By, in characters.
	PauseByMaxLen = 100
	// PauseNoteMaxLen bounds PauseNote.Note, in characters: a line
	// saying why, not a report.
	PauseNoteMaxLen = 500
)

// MissedPolicy says what happens to the slots of a schedule that passed
// while no scheduler ran (no leader, the database down, the schedule's row
// locked), once one runs again.
type MissedPolicy string

const (
	// MissedOnce enqueues one job, for the latest slot that passed, and
	// counts the others as missed: what celery beat did after a restart.
	// It is the default.
	MissedOnce MissedPolicy = "once"
	// MissedSkip enqueues no job once the scheduler has fallen behind:
	// when more than one slot is due, or the one slot due is past its
	// grace (MissedGrace), every slot due is counted missed and the
	// schedule resumes at its next future slot. A single slot found on
	// time runs as usual.
	MissedSkip MissedPolicy = "skip"
	// MissedAll enqueues one job per missed slot, the latest
	// StoreConfig.MaxCatchUp of them, and counts older ones as
	// missed.
	MissedAll MissedPolicy = "all"
)

// OverlapPolicy says whether a slot's job is enqueued while the job of the
// schedule's previous run has not finished.
type OverlapPolicy string

const (
	// OverlapSkip enqueues no job while the schedule's last job is still
	// available, pending, scheduled, running or retryable: the slot is
	// counted in SkippedCount and logged. It is the default, since most
	// periodic work (the sweep) gains nothing from two runs at once.
	OverlapSkip OverlapPolicy = "skip"
	// OverlapAllow enqueues every slot's job whatever the previous one is
	// doing.
	OverlapAllow OverlapPolicy = "allow"
	// OverlapBufferOne keeps one slot waiting while the previous job has
	// not finished, and enqueues it as soon as that job is finished
	// (completed, cancelled or discarded): the work runs once more after
	// the current run, never twice at once. A later slot that comes due
	// while one is waiting takes its place; the slot replaced is counted
	// in SkippedCount.
	OverlapBufferOne OverlapPolicy = "buffer_one"
	// OverlapCancelOther cancels the previous job when it has not
	// finished (River's JobCancel: a running job's context is cancelled,
	// a waiting one never runs) and enqueues the slot's job: the newest
	// run wins.
	OverlapCancelOther OverlapPolicy = "cancel_other"
)

// Errors of schedules. Store wraps them with the schedule named;
// errors.Is tells them apart.
var (
	// ErrInvalidSchedule is what every *FieldError is: a field of
	// a schedule (or of a backfill's range) is out of range. Nothing was
	// written.
	ErrInvalidSchedule = errors.New("invalid schedule")
	// ErrNotFound is returned when no schedule has the name given.
	ErrNotFound = errors.New("schedule not found")
	// ErrExists is returned by Create when the name is taken.
	ErrExists = errors.New("schedule already exists")
	// ErrUnknownKind is returned, inside a *FieldError for field
	// "kind", when a schedule names a job kind the store was not given
	// (StoreConfig.Kinds): no worker of this build would run it.
	ErrUnknownKind = errors.New("unknown job kind")
)

// FieldError names the field of a schedule that is out of range.
// errors.Is(err, ErrInvalidSchedule) is true for it, and so is
// errors.Is(err, Err)'s chain (ErrUnknownKind for an unknown kind).
type FieldError struct {
	// Field is the field's JSON name: "name", "kind", "args", "every",
	// "cron", "time_zone", "queue", "priority", "max_attempts",
	// "start_at", "expires_at", "missed", "overlap", for Pause
	// "paused.by" and "paused.note", or, for Backfill, "from" and "to".
	Field string
	// Err says what is wrong with it.
	Err error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s: %v", ErrInvalidSchedule, e.Field, e.Err)
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidSchedule) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidSchedule }

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Schedule is one row of wasso_schedule: a job of Kind with Args,
// enqueued at every slot of either Every or Cron (exactly one is set).
//
// The zero values of the optional fields mean their defaults when the
// schedule is created: Args {} , TimeZone the store's default, Queue the
// kind's own queue (its InsertOpts) or River's default queue, Priority
// the kind's or 1, MaxAttempts the kind's or River's 25, Missed
// MissedOnce, Overlap OverlapSkip. Enabled has no default: a schedule
// created with Enabled false exists but never runs until enabled.
//
// Fields from LastRunAt on are kept by the store and the scheduler and
// ignored when creating or updating. Zero times mean unset.
type Schedule struct {
	// Name identifies the schedule: 1 to 100 characters of A-Z a-z 0-9
	// . _ : -. It is the primary key and cannot be changed.
	Name string `json:"name"`
	// Kind is the River job kind enqueued.
	Kind string `json:"kind"`
	// Args are the job's args, a JSON object that must decode into the
	// kind's args type without unknown fields.
	Args json.RawMessage `json:"args,omitempty"`
	// Every is the interval between slots of an interval schedule, 1 s to
	// 31 days, a whole number of microseconds. Its slots are StartAt +
	// k*Every when StartAt is set, else the multiples of Every since the
	// Unix epoch (a 5-minute schedule runs at :00, :05, ... UTC), so that
	// they do not depend on when the schedule was written. JSON: a Go
	// duration string such as "5m0s", omitted for a cron schedule.
	Every time.Duration `json:"-"`
	// Cron is the five-field cron expression of a cron schedule (minute
	// hour day-of-month month day-of-week), or one of @yearly, @monthly,
	// @weekly, @daily, @midnight, @hourly, evaluated in TimeZone with
	// cron's daylight saving time rules: a local time skipped by a
	// spring-forward transition fires once at the end of the gap (02:30
	// in New York on that day fires at 03:00 EDT), and one repeated by a
	// fall-back transition fires once, at its first occurrence (01:30
	// EDT), unless the hour field matches every hour ("0 * * * *" fires
	// at 01:00 EDT and 01:00 EST). robfig/cron alone would skip the first
	// and fire the second twice.
	Cron string `json:"cron,omitempty"`
	// TimeZone is the IANA name of the zone Cron is evaluated in
	// ("Asia/Seoul"). It does not matter to interval schedules.
	TimeZone string `json:"time_zone,omitempty"`
	// Enabled schedules run; disabled ones keep their row and counters.
	Enabled bool `json:"enabled"`
	// Queue is the River queue of the jobs.
	Queue string `json:"queue,omitempty"`
	// Priority is the River priority of the jobs, 1 (first) to 4.
	Priority int `json:"priority,omitempty"`
	// MaxAttempts is the jobs' max_attempts, at least 1.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// StartAt, if set, is the first instant a slot may fall on; for an
	// interval schedule it also anchors the slots.
	StartAt time.Time `json:"start_at,omitzero"`
	// ExpiresAt, if set, is the last instant a slot may fall on: the
	// first slot after it disables the schedule.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// OneOff schedules are disabled after their first job is enqueued.
	OneOff bool `json:"one_off"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Missed is the missed-slot policy; see MissedPolicy.
	Missed MissedPolicy `json:"missed,omitempty"`
	// Overlap is the overlap policy; see OverlapPolicy.
	Overlap OverlapPolicy `json:"overlap,omitempty"`
	// CatchupWindow, when set, is how old a slot may be and still run
	// once a scheduler runs again after falling behind (no leader, the
	// database down): slots older than now - CatchupWindow are counted
	// missed and never run, whatever Missed says, and a slot within it
	// is on time for MissedSkip. Zero keeps the default: MissedOnce and
	// MissedAll run slots of any age, and MissedSkip's grace is
	// MissedGrace or the gap to the next slot, if shorter. 1 s to 366
	// days. JSON: a Go duration string.
	CatchupWindow time.Duration `json:"-"`
	// Jitter, when set, delays each slot's job by a fixed amount in
	// [0, Jitter) drawn from the schedule's name and the slot (the same
	// slot always gets the same delay, on any runner), so that many
	// schedules due at one instant spread their work. The job is
	// scheduled at slot + delay and its metadata records "jitter". At
	// most JitterMax and shorter than the gaps between slots. JSON: a Go
	// duration string.
	Jitter time.Duration `json:"-"`
	// PauseAfterFailures, when set, pauses the schedule (disables it,
	// with a note by PausedByScheduler) when it comes due and its last
	// PauseAfterFailures jobs all failed: discarded, or waiting to be
	// retried after a failed attempt. 0 never pauses; at most
	// PauseAfterFailuresMax.
	PauseAfterFailures int `json:"pause_after_failures,omitempty"`

	// LastRunAt is the latest slot a job was enqueued for.
	LastRunAt time.Time `json:"last_run_at,omitzero"`
	// LastJobID is the id of that job.
	LastJobID int64 `json:"last_job_id,omitzero"`
	// NextRunAt is the next slot, zero when the schedule is disabled,
	// expired, or a one-off that has run.
	NextRunAt time.Time `json:"next_run_at,omitzero"`
	// TotalRunCount counts the jobs enqueued, by the scheduler, RunNow
	// and Backfill.
	TotalRunCount int64 `json:"total_run_count"`
	// SkippedCount counts the slots not run because the previous job had
	// not finished (OverlapSkip).
	SkippedCount int64 `json:"skipped_count"`
	// MissedCount counts the slots not run because they were missed (see
	// MissedPolicy).
	MissedCount int64 `json:"missed_count"`
	// BufferedSlot is the slot waiting for the previous job to finish
	// (OverlapBufferOne); zero when none is.
	BufferedSlot time.Time `json:"buffered_slot,omitzero"`
	// CreatedAt is when the schedule was created.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// UpdatedAt is when the row last changed, by the store or the
	// scheduler.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Paused says who disabled the schedule, why and when; nil on an
	// enabled schedule (enabling clears it) and on one created disabled.
	Paused *PauseNote `json:"paused,omitempty"`
}

// PauseNote is who paused (disabled) a schedule, why and when: what
// Store.Pause records, and what Schedule.Paused reads back. A person
// pausing one gives their name; a program pausing one on its own gives
// its own (such as "scheduler").
type PauseNote struct {
	// By is who paused the schedule: an operator's name, a program's, or
	// empty when unknown. At most PauseByMaxLen characters.
	By string `json:"by"`
	// Note says why, on one line; it may be empty. At most
	// PauseNoteMaxLen characters.
	Note string `json:"note"`
	// At is when the schedule was paused, by the store's clock, in UTC.
	// The store sets it; a value given to Pause is ignored.
	At time.Time `json:"at"`
}

// validate checks the note's text fields: bounded, printable, one line,
// so that a list or a log line shows it as it is.
func (n *PauseNote) validate() error {
	for _, f := range []struct {
		field, value string
		max          int
	}{{"paused.by", n.By, PauseByMaxLen}, {"paused.note", n.Note, PauseNoteMaxLen}} {
		if !utf8.ValidString(f.value) {
			return fieldError(f.field, "is not valid UTF-8")
		}
		if l := utf8.RuneCountInString(f.value); l > f.max {
			return fieldError(f.field, "is %d characters long, more than %d", l, f.max)
		}
		if i := strings.IndexFunc(f.value, unicode.IsControl); i >= 0 {
			return fieldError(f.field, "holds a control character (%U) at byte %d: write it on one line", []rune(f.value[i:])[0], i)
		}
	}
	return nil
}

// MarshalJSON writes the schedule with Every, CatchupWindow and Jitter
// as Go duration strings.
func (s Schedule) MarshalJSON() ([]byte, error) {
	type plain Schedule
	return json.Marshal(struct {
		plain
		Every         string `json:"every,omitempty"`
		CatchupWindow string `json:"catchup_window,omitempty"`
		Jitter        string `json:"jitter,omitempty"`
	}{plain(s), durationString(s.Every), durationString(s.CatchupWindow), durationString(s.Jitter)})
}

// UnmarshalJSON reads a schedule written by MarshalJSON; "every",
// "catchup_window" and "jitter" are Go duration strings.
func (s *Schedule) UnmarshalJSON(data []byte) error {
	type plain Schedule
	aux := struct {
		*plain
		durationsJSON
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	return aux.decode(func(d time.Duration) { s.Every = d }, func(d time.Duration) { s.CatchupWindow = d },
		func(d time.Duration) { s.Jitter = d })
}

// durationsJSON are the duration fields of Schedule and Update as JSON
// reads them: Go duration strings, nil when absent.
type durationsJSON struct {
	Every         *string `json:"every"`
	CatchupWindow *string `json:"catchup_window"`
	Jitter        *string `json:"jitter"`
}

// decode parses each field present and hands it to its setter, in the
// order every, catchup_window, jitter.
func (d durationsJSON) decode(setters ...func(time.Duration)) error {
	for i, f := range []struct {
		field string
		src   *string
	}{{"every", d.Every}, {"catchup_window", d.CatchupWindow}, {"jitter", d.Jitter}} {
		if f.src == nil {
			continue
		}
		v, err := parseDuration(f.field, *f.src)
		if err != nil {
			return err
		}
		setters[i](v)
	}
	return nil
}

// durationString writes d as a Go duration string, empty for zero.
func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// parseDuration reads the Go duration string of field; empty is zero.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &FieldError{Field: field, Err: err}
	}
	return d, nil
}

// Update is a partial update of a schedule: nil fields are left as
// they are. Setting Every to a non-zero value clears Cron and setting Cron
// to a non-empty one clears Every, since a schedule has exactly one of
// them. A pointer to a zero time clears StartAt or ExpiresAt. Changing
// Every, Cron, TimeZone or StartAt recomputes NextRunAt from now (slots of
// the old timetable that are due and not yet run are dropped, not
// missed), and so does enabling a disabled schedule. Each field stands
// for the Schedule field of the same name and JSON name; Every is a Go
// duration string in JSON.
type Update struct {
	Kind        *string          `json:"kind,omitempty"`
	Args        *json.RawMessage `json:"args,omitempty"`
	Every       *time.Duration   `json:"-"`
	Cron        *string          `json:"cron,omitempty"`
	TimeZone    *string          `json:"time_zone,omitempty"`
	Enabled     *bool            `json:"enabled,omitempty"`
	Queue       *string          `json:"queue,omitempty"`
	Priority    *int             `json:"priority,omitempty"`
	MaxAttempts *int             `json:"max_attempts,omitempty"`
	StartAt     *time.Time       `json:"start_at,omitempty"`
	ExpiresAt   *time.Time       `json:"expires_at,omitempty"`
	OneOff      *bool            `json:"one_off,omitempty"`
	Description *string          `json:"description,omitempty"`
	Missed      *MissedPolicy    `json:"missed,omitempty"`
	Overlap     *OverlapPolicy   `json:"overlap,omitempty"`
	// CatchupWindow and Jitter are Go duration strings in JSON; zero
	// clears them.
	CatchupWindow      *time.Duration `json:"-"`
	Jitter             *time.Duration `json:"-"`
	PauseAfterFailures *int           `json:"pause_after_failures,omitempty"`
}

// MarshalJSON writes the update with Every, CatchupWindow and Jitter as
// Go duration strings.
func (u Update) MarshalJSON() ([]byte, error) {
	type plain Update
	str := func(d *time.Duration) *string {
		if d == nil {
			return nil
		}
		return ptrTo(d.String())
	}
	return json.Marshal(struct {
		plain
		Every         *string `json:"every,omitempty"`
		CatchupWindow *string `json:"catchup_window,omitempty"`
		Jitter        *string `json:"jitter,omitempty"`
	}{plain(u), str(u.Every), str(u.CatchupWindow), str(u.Jitter)})
}

// UnmarshalJSON reads an update whose "every", "catchup_window" and
// "jitter" are Go duration strings.
func (u *Update) UnmarshalJSON(data []byte) error {
	type plain Update
	aux := struct {
		*plain
		durationsJSON
	}{plain: (*plain)(u)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	return aux.decode(func(d time.Duration) { u.Every = &d }, func(d time.Duration) { u.CatchupWindow = &d },
		func(d time.Duration) { u.Jitter = &d })
}

// apply returns s with the update's fields set.
func (u *Update) apply(s Schedule) Schedule {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&s.Kind, u.Kind)
	set(&s.Cron, u.Cron)
	set(&s.TimeZone, u.TimeZone)
	set(&s.Queue, u.Queue)
	set(&s.Description, u.Description)
	if u.Args != nil {
		s.Args = *u.Args
	}
	if u.Every != nil {
		s.Every = *u.Every
		if s.Every != 0 && u.Cron == nil {
			s.Cron = ""
		}
	}
	if u.Cron != nil && s.Cron != "" && u.Every == nil {
		s.Every = 0
	}
	if u.Enabled != nil {
		s.Enabled = *u.Enabled
	}
	if u.Priority != nil {
		s.Priority = *u.Priority
	}
	if u.MaxAttempts != nil {
		s.MaxAttempts = *u.MaxAttempts
	}
	if u.StartAt != nil {
		s.StartAt = *u.StartAt
	}
	if u.ExpiresAt != nil {
		s.ExpiresAt = *u.ExpiresAt
	}
	if u.OneOff != nil {
		s.OneOff = *u.OneOff
	}
	if u.Missed != nil {
		s.Missed = *u.Missed
	}
	if u.Overlap != nil {
		s.Overlap = *u.Overlap
	}
	if u.CatchupWindow != nil {
		s.CatchupWindow = *u.CatchupWindow
	}
	if u.Jitter != nil {
		s.Jitter = *u.Jitter
	}
	if u.PauseAfterFailures != nil {
		s.PauseAfterFailures = *u.PauseAfterFailures
	}
	return s
}

// retimes says whether the update changes the timetable, so that
// NextRunAt must be computed anew.
func (u *Update) retimes() bool {
	return u.Every != nil || u.Cron != nil || u.TimeZone != nil || u.StartAt != nil
}

var (
	scheduleNameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)
	// queueNameRE is River's rule for queue names (validateQueueName),
	// checked when the schedule is written rather than when its first job
	// fails to insert.
	queueNameRE = regexp.MustCompile(`^(?:[a-z0-9])+(?:[_|\-]?[a-z0-9]+)*$`)
)

// withDefaults fills the optional fields of a schedule about to be
// created; kind may be nil (unknown kind, refused later).
func (s Schedule) withDefaults(defaultTZ string, kind *Kind) Schedule {
	if len(bytes.TrimSpace(s.Args)) == 0 {
		s.Args = json.RawMessage(`{}`)
	}
	if s.TimeZone == "" {
		s.TimeZone = defaultTZ
	}
	var opts river.InsertOpts
	if kind != nil {
		opts = kind.opts
	}
	if s.Queue == "" {
		s.Queue = opts.Queue
		if s.Queue == "" {
			s.Queue = river.QueueDefault
		}
	}
	if s.Priority == 0 {
		s.Priority = max(opts.Priority, 1)
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = opts.MaxAttempts
		if s.MaxAttempts == 0 {
			s.MaxAttempts = river.MaxAttemptsDefault
		}
	}
	if s.Missed == "" {
		s.Missed = MissedOnce
	}
	if s.Overlap == "" {
		s.Overlap = OverlapSkip
	}
	s.StartAt = truncMicro(s.StartAt)
	s.ExpiresAt = truncMicro(s.ExpiresAt)
	return s
}

// validate checks everything about the schedule but its kind and args,
// which need the store's kinds, and returns its timetable.
func (s *Schedule) validate() (*timetable, error) {
	if !scheduleNameRE.MatchString(s.Name) {
		return nil, fieldError("name", "%q must be 1 to %d characters of A-Z a-z 0-9 . _ : -", s.Name, NameMaxLen)
	}
	if s.Kind == "" {
		return nil, fieldError("kind", "must not be empty")
	}
	trimmed := bytes.TrimSpace(s.Args)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, fieldError("args", "must be a JSON object, not %s", quoteJSON(trimmed))
	}
	if !queueNameRE.MatchString(s.Queue) || len(s.Queue) > 64 {
		return nil, fieldError("queue", "%q must be up to 64 lower-case letters and digits separated by _ or -", s.Queue)
	}
	if s.Priority < 1 || s.Priority > 4 {
		return nil, fieldError("priority", "%d must be between 1 and 4", s.Priority)
	}
	if s.MaxAttempts < 1 {
		return nil, fieldError("max_attempts", "%d must be at least 1", s.MaxAttempts)
	}
	switch s.Missed {
	case MissedOnce, MissedSkip, MissedAll:
	default:
		return nil, fieldError("missed", "%q must be once, skip or all", s.Missed)
	}
	switch s.Overlap {
	case OverlapSkip, OverlapAllow, OverlapBufferOne, OverlapCancelOther:
	default:
		return nil, fieldError("overlap", "%q must be skip, allow, buffer_one or cancel_other", s.Overlap)
	}
	if s.CatchupWindow != 0 && (s.CatchupWindow < CatchupWindowMin || s.CatchupWindow > CatchupWindowMax || s.CatchupWindow%time.Microsecond != 0) {
		return nil, fieldError("catchup_window", "%s must be between %s and %s, in whole microseconds (or 0 for the default)", s.CatchupWindow, CatchupWindowMin, CatchupWindowMax)
	}
	if s.Jitter < 0 || s.Jitter > JitterMax || s.Jitter%time.Microsecond != 0 {
		return nil, fieldError("jitter", "%s must be between 0 and %s, in whole microseconds", s.Jitter, JitterMax)
	}
	if s.PauseAfterFailures < 0 || s.PauseAfterFailures > PauseAfterFailuresMax {
		return nil, fieldError("pause_after_failures", "%d must be between 0 (never) and %d", s.PauseAfterFailures, PauseAfterFailuresMax)
	}
	if !s.StartAt.IsZero() && !s.ExpiresAt.IsZero() && !s.ExpiresAt.After(s.StartAt) {
		return nil, fieldError("expires_at", "%s is not after start_at %s", s.ExpiresAt.UTC().Format(time.RFC3339Nano), s.StartAt.UTC().Format(time.RFC3339Nano))
	}
	tt, err := compileTimetable(s.Every, s.Cron, s.TimeZone, s.StartAt)
	if err != nil {
		return nil, err
	}
	if s.Jitter > 0 {
		if gap := tt.shortestGap(jitterGapSlots); gap > 0 && s.Jitter >= gap {
			return nil, fieldError("jitter", "%s must be shorter than the %s between the schedule's slots, or its runs would overtake each other", s.Jitter, gap)
		}
	}
	return tt, nil
}

// jitterGapSlots is how many of a schedule's slots, from the Unix epoch
// on for an interval and from its next ones for cron, the jitter is
// checked against.
const jitterGapSlots = 50

func quoteJSON(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	const maxLen = 60
	if len(b) > maxLen {
		return string(b[:maxLen]) + "…"
	}
	return string(b)
}

func truncMicro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// slotMetadata is the metadata of a slot's job: the schedule and the slot,
// an RFC 3339 UTC instant with fractional seconds only when non-zero, and
// the jitter delay when there is one.
func slotMetadata(name string, slot time.Time, jitter time.Duration) []byte {
	b, _ := json.Marshal(struct {
		Schedule string `json:"schedule"`
		Slot     string `json:"slot"`
		Jitter   string `json:"jitter,omitempty"`
	}{name, FormatSlot(slot), durationString(jitter)})
	return b
}

// FormatSlot writes a slot the way job metadata carries it: RFC 3339 in
// UTC, with fractional seconds only when they are not zero
// ("2025-03-01T00:00:00Z").
func FormatSlot(slot time.Time) string { return slot.UTC().Format(time.RFC3339Nano) }

// insertParams returns the job of one slot of s: scheduled at slot plus
// its jitter delay when s has a Jitter (River makes a job whose time has
// come available at once).
func (s *Schedule) insertParams(slot time.Time) river.InsertManyParams {
	delay := jitterDelay(s.Name, slot, s.Jitter)
	opts := &river.InsertOpts{
		MaxAttempts: s.MaxAttempts,
		Metadata:    slotMetadata(s.Name, slot, delay),
		Priority:    s.Priority,
		Queue:       s.Queue,
	}
	if delay > 0 {
		opts.ScheduledAt = slot.Add(delay)
	}
	return river.InsertManyParams{Args: scheduledArgs{kind: s.Kind, args: s.Args}, InsertOpts: opts}
}
