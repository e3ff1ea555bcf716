package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// What Describe returns.
const (
	// DescribeSlots is how many upcoming slots Describe lists.
	DescribeSlots = 10
	// DescribeRuns is how many of the latest runs Describe lists.
	DescribeRuns = 20
)

// Description is everything known about one schedule, for the detail
// views of the CLI (schedule show) and the schedules page: the schedule
// itself, with its counters and pause note, its next slots and its
// latest runs.
//
// Its JSON is the schedule's own object (Schedule's JSON) with
// "next_slots", "runs" and "as_of" added, so that a client reading a
// Schedule from it reads the same fields.
type Description struct {
	Schedule Schedule
	// NextSlots are the next DescribeSlots slots, earliest first: from
	// NextRunAt on for an enabled schedule (the first may be overdue),
	// none once it has no run left; for a disabled schedule, the slots it
	// would run if enabled at AsOf. A one-off has one at most, and none
	// fall after ExpiresAt.
	NextSlots []UpcomingSlot
	// Runs are the latest DescribeRuns jobs the schedule enqueued (by the
	// scheduler, RunNow or Backfill), newest first, as long as River
	// keeps them (its retention deletes finished jobs).
	Runs []Run
	// AsOf is the store's clock when the description was read.
	AsOf time.Time
}

// UpcomingSlot is a slot to come, with the UTC offset it falls in, so
// that a daylight saving time change between two slots shows as one.
type UpcomingSlot struct {
	// At is the slot, in UTC.
	At time.Time
	// Local is the slot in the schedule's zone.
	Local time.Time
	// Zone is the zone's abbreviation at the slot ("CET", "KST").
	Zone string
	// Offset is the zone's offset from UTC at the slot, "+01:00".
	Offset string
	// OffsetChanged is true when Offset differs from the previous slot's
	// (for the first slot: from the offset at Description.AsOf): the
	// clocks changed in between, a daylight saving time transition.
	OffsetChanged bool
}

// MarshalJSON writes the slot with its instant in UTC ("at") and in the
// schedule's zone ("local", RFC 3339 with the offset).
func (u UpcomingSlot) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		At            string `json:"at"`
		Local         string `json:"local"`
		Zone          string `json:"zone"`
		Offset        string `json:"offset"`
		OffsetChanged bool   `json:"offset_changed"`
	}{FormatSlot(u.At), u.Local.Format(time.RFC3339Nano), u.Zone, u.Offset, u.OffsetChanged})
}

// Run is one job a schedule enqueued, as River has it.
type Run struct {
	JobID int64
	// Slot is the slot the job stands for (its metadata's "slot"); zero
	// if the metadata does not say.
	Slot        time.Time
	State       rivertype.JobState
	Attempt     int
	MaxAttempts int
	CreatedAt   time.Time
	// AttemptedAt is when the latest attempt started; zero before the
	// first.
	AttemptedAt time.Time
	// FinalizedAt is when the job completed, was cancelled or was
	// discarded; zero before.
	FinalizedAt time.Time
	// Duration is FinalizedAt - AttemptedAt for a finished job that ran,
	// and for a running one the time it has run so far (AsOf -
	// AttemptedAt, never negative); zero otherwise.
	Duration time.Duration
	// LastError is the error of the latest failed attempt, if any.
	LastError string
}

// MarshalJSON writes the run with Duration as a Go duration string
// ("1.5s") and the unset times omitted.
func (r Run) MarshalJSON() ([]byte, error) {
	type opt = *string
	at := func(t time.Time) opt {
		if t.IsZero() {
			return nil
		}
		s := FormatSlot(t)
		return &s
	}
	return json.Marshal(struct {
		JobID       int64              `json:"job_id"`
		Slot        opt                `json:"slot,omitempty"`
		State       rivertype.JobState `json:"state"`
		Attempt     int                `json:"attempt"`
		MaxAttempts int                `json:"max_attempts"`
		CreatedAt   opt                `json:"created_at"`
		AttemptedAt opt                `json:"attempted_at,omitempty"`
		FinalizedAt opt                `json:"finalized_at,omitempty"`
		Duration    string             `json:"duration,omitempty"`
		LastError   string             `json:"last_error,omitempty"`
	}{r.JobID, at(r.Slot), r.State, r.Attempt, r.MaxAttempts, at(r.CreatedAt), at(r.AttemptedAt), at(r.FinalizedAt),
		durationString(r.Duration), r.LastError})
}

// MarshalJSON writes the schedule's JSON object with "next_slots", "runs"
// and "as_of" added.
func (d Description) MarshalJSON() ([]byte, error) {
	sched, err := json.Marshal(d.Schedule)
	if err != nil {
		return nil, err
	}
	slots, runs := d.NextSlots, d.Runs
	if slots == nil {
		slots = []UpcomingSlot{}
	}
	if runs == nil {
		runs = []Run{}
	}
	extra, err := json.Marshal(struct {
		NextSlots []UpcomingSlot `json:"next_slots"`
		Runs      []Run          `json:"runs"`
		AsOf      string         `json:"as_of"`
	}{slots, runs, FormatSlot(d.AsOf)})
	if err != nil {
		return nil, err
	}
	// Both are JSON objects: the schedule's fields, then the others.
	out := append(sched[:len(sched)-1:len(sched)-1], ',')
	return append(out, extra[1:]...), nil
}

// Describe returns the schedule named with its next slots and latest
// runs (see Description), or an error wrapping ErrNotFound. It reads in
// one transaction begun on db (a savepoint in a caller's pgx.Tx), writes
// nothing, and needs the store's inserter (a River client) to list the
// runs.
func (s *Store) Describe(ctx context.Context, db Beginner, name string) (*Description, error) {
	lister, err := s.getInserter()
	if err != nil {
		return nil, err
	}
	return scheduleTx(ctx, db, func(tx pgx.Tx) (*Description, error) {
		sched, err := s.Get(ctx, tx, name)
		if err != nil {
			return nil, err
		}
		now := s.now()
		d := &Description{Schedule: *sched, AsOf: now.UTC()}
		if d.NextSlots, err = upcomingSlots(sched, now, DescribeSlots); err != nil {
			return nil, fmt.Errorf("describe schedule %q: stored schedule is invalid: %w", name, err)
		}
		if d.Runs, err = listRuns(ctx, tx, lister, name, now, DescribeRuns); err != nil {
			return nil, err
		}
		return d, nil
	})
}

// upcomingSlots returns the next n slots of sched as Description says.
func upcomingSlots(sched *Schedule, now time.Time, n int) ([]UpcomingSlot, error) {
	tt, err := compileTimetable(sched.Every, sched.Cron, sched.TimeZone, sched.StartAt)
	if err != nil {
		return nil, err
	}
	var slot time.Time
	switch {
	case sched.Enabled && sched.NextRunAt.IsZero():
		return nil, nil
	case sched.Enabled:
		slot = sched.NextRunAt
	default:
		slot = tt.atOrAfter(truncMicro(now))
	}
	if sched.OneOff {
		n = 1
	}
	_, prev := now.In(tt.loc).Zone()
	var out []UpcomingSlot
	for ; len(out) < n && !slot.IsZero(); slot = tt.next(slot) {
		if !sched.ExpiresAt.IsZero() && slot.After(sched.ExpiresAt) {
			break
		}
		local := slot.In(tt.loc)
		zone, offset := local.Zone()
		out = append(out, UpcomingSlot{
			At: slot.UTC(), Local: local, Zone: zone, Offset: local.Format("-07:00"), OffsetChanged: offset != prev,
		})
		prev = offset
	}
	return out, nil
}

// listRuns returns the latest n jobs of the schedule named, newest first
// (latestJobs), as runs.
func listRuns(ctx context.Context, tx pgx.Tx, lister Inserter, name string, now time.Time, n int) ([]Run, error) {
	jobs, err := latestJobs(ctx, tx, lister, name, n)
	if err != nil {
		return nil, err
	}
	runs := make([]Run, 0, len(jobs))
	for _, job := range jobs {
		runs = append(runs, newRun(job, now))
	}
	return runs, nil
}

// latestJobs returns the latest n jobs of the schedule named, newest
// first, through River's job list: the jobs carry {"schedule": name} in
// their metadata (slotMetadata), which river_job's GIN index on metadata
// finds.
func latestJobs(ctx context.Context, tx pgx.Tx, lister Inserter, name string, n int) ([]*rivertype.JobRow, error) {
	fragment, err := json.Marshal(map[string]string{"schedule": name})
	if err != nil {
		return nil, err
	}
	params := river.NewJobListParams().Metadata(string(fragment)).OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(n)
	res, err := lister.JobListTx(ctx, tx, params)
	if err != nil {
		return nil, scheduleErr(fmt.Sprintf("list the last %d jobs of schedule %q", n, name), err)
	}
	return res.Jobs, nil
}

func newRun(job *rivertype.JobRow, now time.Time) Run {
	r := Run{
		JobID: job.ID, State: job.State, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts,
		CreatedAt: job.CreatedAt.UTC(), AttemptedAt: utcOrZero(job.AttemptedAt), FinalizedAt: utcOrZero(job.FinalizedAt),
	}
	var meta struct {
		Slot string `json:"slot"`
	}
	if json.Unmarshal(job.Metadata, &meta) == nil {
		if slot, err := time.Parse(time.RFC3339Nano, meta.Slot); err == nil {
			r.Slot = slot.UTC()
		}
	}
	switch {
	case r.AttemptedAt.IsZero():
	case !r.FinalizedAt.IsZero():
		r.Duration = r.FinalizedAt.Sub(r.AttemptedAt)
	case job.State == rivertype.JobStateRunning:
		r.Duration = max(now.Sub(r.AttemptedAt), 0)
	}
	if len(job.Errors) > 0 {
		r.LastError = job.Errors[len(job.Errors)-1].Error
	}
	return r
}
