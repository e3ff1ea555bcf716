package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
	wassoriver "github.com/wasso/scheduler/river"
)

func (a *app) inspectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Show running, registered and scheduled jobs, queues and statistics (celery inspect)",
		Args:  cobra.ArbitraryArgs,
		RunE:  subcommandRequired,
	}
	type sub struct {
		name, short string
		run         func(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], limit int, asJSON bool) error
	}
	for _, s := range []sub{
		{"active", "Jobs running now, on any runner (celery inspect active)", a.inspectActive},
		{"registered", "Job kinds a runner with this configuration works (celery inspect registered)", a.inspectRegistered},
		{"scheduled", "Jobs waiting for a future time (scheduled, retryable) and the stored schedules' next runs (celery inspect scheduled)", a.inspectScheduled},
		{"queues", "Queues: paused or not, jobs by state (celery inspect active_queues)", a.inspectQueues},
		{"stats", "Jobs by state, the leader, the last sweep (celery inspect stats)", a.inspectStats},
	} {
		var (
			limit  int
			asJSON bool
		)
		c := &cobra.Command{
			Use:   s.name,
			Short: s.short,
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if limit < 1 || limit > 10_000 {
					return usagef("--limit %d: must be between 1 and 10000", limit)
				}
				return a.withControl(cmd.Context(), func(pool *pgxpool.Pool, client *river.Client[pgx.Tx]) error {
					return s.run(cmd.Context(), pool, client, limit, asJSON)
				})
			},
		}
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
		c.Flags().IntVar(&limit, "limit", 100, "most jobs to show")
		if s.name == "scheduled" || s.name == "registered" {
			c.Flags().Duration("sweep-interval", attendance.SweepIntervalDefault, "sweep interval of the runners (key sweep.interval)")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

// activeJobJSON is a running job and the runner holding it.
type activeJobJSON struct {
	jobJSON
	Runner runnerJSON `json:"runner"`
}

// inspectActive lists the running jobs with the runner holding each and
// whether that runner is alive (see heartbeat.go): a job whose runner is
// lost stays running until River's rescuer retries it, after
// run.rescue_after.
func (a *app) inspectActive(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], limit int, asJSON bool) error {
	res, err := client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).
		OrderBy(river.JobListOrderByTime, river.SortOrderAsc).First(limit))
	if err != nil {
		return fmt.Errorf("list running jobs: %w", err)
	}
	holder := func(j *rivertype.JobRow) string {
		if n := len(j.AttemptedBy); n > 0 {
			return j.AttemptedBy[n-1]
		}
		return ""
	}
	var ids []string
	for _, j := range res.Jobs {
		if id := holder(j); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	runners, err := a.runnerStates(ctx, pool, ids)
	if err != nil {
		return err
	}
	runners[""] = runnerJSON{State: runnerUnknown}
	if asJSON {
		out := make([]activeJobJSON, 0, len(res.Jobs))
		for _, j := range res.Jobs {
			out = append(out, activeJobJSON{jobJSON: jobJSONOf(j), Runner: runners[holder(j)]})
		}
		return printJSON(a.stdout, out)
	}
	now := time.Now()
	lost := 0
	t := newTable(a.stdout, "ID", "KIND", "QUEUE", "ATTEMPT", "RUNNER", "RUNNER STATE", "STARTED", "RUNNING FOR")
	for _, j := range res.Jobs {
		r := runners[holder(j)]
		if r.State == runnerLost || r.State == runnerStopped {
			lost++
		}
		running := "-"
		if j.AttemptedAt != nil {
			running = roundDuration(now.Sub(*j.AttemptedAt)).String()
		}
		t.row(j.ID, j.Kind, j.Queue, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), r.ID, r.describe(), a.fmtTime(j.AttemptedAt), running)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(res.Jobs) == 0 {
		fmt.Fprintln(a.stdout, "(no running jobs)")
	}
	if lost > 0 {
		fmt.Fprintf(a.stdout, "%d job(s) held by a runner that is gone: the leader retries them once they have run for run.rescue_after (%s here)\n",
			lost, a.cfg.RiverConfig().WithDefaults().RescueStuckJobsAfter)
	}
	return nil
}

type kindCountsJSON struct {
	Kind   string           `json:"kind"`
	Counts map[string]int64 `json:"jobs_by_state"`
}

// inspectRegistered lists the job kinds a runner with this configuration
// works, with their jobs by state.
func (a *app) inspectRegistered(ctx context.Context, pool *pgxpool.Pool, _ *river.Client[pgx.Tx], _ int, asJSON bool) error {
	kinds := wassoriver.Kinds(a.cfg.RiverConfig())
	counts := map[string]map[string]int64{}
	for _, k := range kinds {
		counts[k] = map[string]int64{}
	}
	jobCounts, err := a.countJobs(ctx, pool, kinds, nil, nil)
	if err != nil {
		return err
	}
	for _, c := range jobCounts {
		if byState := counts[c.kind]; byState != nil {
			byState[c.state] += c.n
		}
	}
	queues := slices.Sorted(maps.Keys(a.cfg.RiverConfig().WithDefaults().Queues))
	if asJSON {
		out := struct {
			Kinds  []kindCountsJSON `json:"kinds"`
			Queues []string         `json:"queues"`
		}{Queues: queues}
		for _, k := range kinds {
			out.Kinds = append(out.Kinds, kindCountsJSON{Kind: k, Counts: counts[k]})
		}
		return printJSON(a.stdout, out)
	}
	t := newTable(a.stdout, "KIND", "AVAILABLE", "SCHEDULED", "RETRYABLE", "RUNNING", "COMPLETED", "DISCARDED", "CANCELLED")
	for _, k := range kinds {
		c := counts[k]
		t.row(k, c["available"], c["scheduled"], c["retryable"], c["running"], c["completed"], c["discarded"], c["cancelled"])
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "queues worked: %v\n", queues)
	return nil
}

func (a *app) inspectScheduled(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], limit int, asJSON bool) error {
	// Exact-deadline settlements wait as scheduled jobs, and for their last
	// seconds as available jobs whose scheduled_at is still ahead (see
	// wassoriver.ExactTimeHook): those are listed with the scheduled and
	// retryable ones.
	res, err := client.JobList(ctx, river.NewJobListParams().
		States(rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable).
		Where("(state <> 'available' OR scheduled_at > now())").
		OrderBy(river.JobListOrderByScheduledAt, river.SortOrderAsc).First(limit))
	if err != nil {
		return fmt.Errorf("list scheduled jobs: %w", err)
	}
	// The stored schedules are what enqueues the periodic jobs (the
	// sweep among them): their next runs are what celery inspect
	// scheduled showed of beat.
	store, err := a.newScheduleStore(nil)
	if err != nil {
		return err
	}
	schedules, err := store.List(ctx, pool)
	if err != nil {
		return err
	}
	if asJSON {
		out := struct {
			Jobs      []jobJSON                    `json:"jobs"`
			Schedules []map[string]json.RawMessage `json:"schedules"`
		}{Jobs: []jobJSON{}, Schedules: schedulesJSON(schedules)}
		for _, j := range res.Jobs {
			out.Jobs = append(out.Jobs, jobJSONOf(j))
		}
		return printJSON(a.stdout, out)
	}
	now := time.Now()
	t := newTable(a.stdout, "ID", "KIND", "QUEUE", "STATE", "ATTEMPT", "RUNS AT", "IN")
	for _, j := range res.Jobs {
		t.row(j.ID, j.Kind, j.Queue, j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), a.fmtTimeV(j.ScheduledAt), fmtAge(now, &j.ScheduledAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(res.Jobs) == 0 {
		fmt.Fprintln(a.stdout, "(no scheduled jobs)")
	}
	fmt.Fprintln(a.stdout)
	st := newTable(a.stdout, "SCHEDULE", "KIND", "TIMETABLE", "ENABLED", "NEXT RUN", "IN")
	for i := range schedules {
		s := &schedules[i]
		st.row(s.Name, s.Kind, timetable(s), yesNo(s.Enabled), fmtInZone(s.NextRunAt, s.TimeZone), fmtAge(now, &s.NextRunAt))
	}
	if err := st.flush(); err != nil {
		return err
	}
	if len(schedules) == 0 {
		fmt.Fprintln(a.stdout, "(no schedules: wasso-runner setup seeds the attendance sweep)")
	}
	return nil
}

type queueJSON struct {
	Name      string           `json:"name"`
	Paused    bool             `json:"paused"`
	PausedAt  *time.Time       `json:"paused_at"`
	UpdatedAt *time.Time       `json:"updated_at"`
	Counts    map[string]int64 `json:"jobs_by_state"`
}

func (a *app) inspectQueues(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], limit int, asJSON bool) error {
	res, err := client.QueueList(ctx, river.NewQueueListParams().First(limit))
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	byName := map[string]*queueJSON{}
	for _, q := range res.Queues {
		updated := q.UpdatedAt
		byName[q.Name] = &queueJSON{Name: q.Name, Paused: q.PausedAt != nil, PausedAt: q.PausedAt, UpdatedAt: &updated, Counts: map[string]int64{}}
	}
	counts, err := a.countJobs(ctx, pool, nil, nil, nil)
	if err != nil {
		return err
	}
	for _, c := range counts {
		q := byName[c.queue]
		if q == nil {
			// A queue with jobs that no runner works (yet).
			q = &queueJSON{Name: c.queue, Counts: map[string]int64{}}
			byName[c.queue] = q
		}
		q.Counts[c.state] += c.n
	}
	names := slices.Sorted(maps.Keys(byName))
	if asJSON {
		out := make([]queueJSON, 0, len(names))
		for _, n := range names {
			out = append(out, *byName[n])
		}
		return printJSON(a.stdout, out)
	}
	t := newTable(a.stdout, "QUEUE", "PAUSED", "AVAILABLE", "RUNNING", "SCHEDULED", "RETRYABLE", "WORKED BY A RUNNER")
	for _, n := range names {
		q := byName[n]
		worked := "no"
		if q.UpdatedAt != nil {
			worked = "yes (seen " + fmtAge(time.Now(), q.UpdatedAt) + ")"
		}
		t.row(q.Name, yesNo(q.Paused), q.Counts["available"], q.Counts["running"], q.Counts["scheduled"], q.Counts["retryable"], worked)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(names) == 0 {
		fmt.Fprintln(a.stdout, "(no queues)")
	}
	return nil
}

type sweepStatsJSON struct {
	CompletedLast24h int64 `json:"completed_last_24h"`
	// FailedLast24h counts sweeps that failed at least one attempt.
	FailedLast24h   int64                   `json:"failed_last_24h"`
	LastCompletedAt *time.Time              `json:"last_completed_at"`
	LastOutput      *attendance.SweepOutput `json:"last_output"`
}

type statsJSON struct {
	JobsByState map[string]int64 `json:"jobs_by_state"`
	Leader      *leaderInfo      `json:"leader"`
	Sweep       sweepStatsJSON   `json:"sweep"`
}

func (a *app) inspectStats(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], _ int, asJSON bool) error {
	out := statsJSON{JobsByState: map[string]int64{}}
	for _, s := range stateNames() {
		out.JobsByState[s] = 0
	}
	counts, err := a.countJobs(ctx, pool, nil, nil, nil)
	if err != nil {
		return err
	}
	for _, c := range counts {
		out.JobsByState[c.state] += c.n
	}
	if out.Leader, err = a.leader(ctx, pool); err != nil {
		return err
	}
	if out.Sweep.CompletedLast24h, out.Sweep.FailedLast24h, err = a.sweepCounts(ctx, pool); err != nil {
		return err
	}
	res, err := client.JobList(ctx, river.NewJobListParams().Kinds(attendance.SweepKind).States(rivertype.JobStateCompleted).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc).First(1))
	if err != nil {
		return fmt.Errorf("last sweep: %w", err)
	}
	if len(res.Jobs) > 0 {
		last := res.Jobs[0]
		out.Sweep.LastCompletedAt = last.FinalizedAt
		var o attendance.SweepOutput
		if raw := last.Output(); len(raw) > 0 && json.Unmarshal(raw, &o) == nil {
			out.Sweep.LastOutput = &o
		}
	}
	if asJSON {
		return printJSON(a.stdout, out)
	}
	t := newTable(a.stdout, "STATE", "JOBS")
	for _, s := range stateNames() {
		t.row(s, out.JobsByState[s])
	}
	if err := t.flush(); err != nil {
		return err
	}
	if out.Leader != nil {
		fmt.Fprintf(a.stdout, "leader: %s (elected %s)\n", out.Leader.ID, a.fmtTimeV(out.Leader.ElectedAt))
	} else {
		fmt.Fprintln(a.stdout, "leader: none")
	}
	fmt.Fprintf(a.stdout, "sweeps in the last 24h: %d completed, %d failed\n", out.Sweep.CompletedLast24h, out.Sweep.FailedLast24h)
	if out.Sweep.LastCompletedAt != nil {
		line := "last sweep: " + a.fmtTime(out.Sweep.LastCompletedAt)
		if o := out.Sweep.LastOutput; o != nil {
			line += fmt.Sprintf(": %d events, %d rows to ABSENT, %d ABSENT rows created", o.ProcessedEvents, o.UpdatedRows, o.CreatedRows)
		}
		fmt.Fprintln(a.stdout, line)
	}
	return nil
}
