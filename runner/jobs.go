package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"
)

// jobJSON is a job as the CLI prints it with --json.
type jobJSON struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Queue       string          `json:"queue"`
	State       string          `json:"state"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Priority    int             `json:"priority"`
	CreatedAt   time.Time       `json:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	AttemptedAt *time.Time      `json:"attempted_at"`
	FinalizedAt *time.Time      `json:"finalized_at"`
	AttemptedBy []string        `json:"attempted_by"`
	LastError   string          `json:"last_error,omitempty"`
	Args        json.RawMessage `json:"args"`
	Output      json.RawMessage `json:"output,omitempty"`
}

func jobJSONOf(j *rivertype.JobRow) jobJSON {
	out := jobJSON{
		ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: string(j.State),
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, Priority: j.Priority,
		CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt, FinalizedAt: j.FinalizedAt,
		AttemptedBy: nonNil(j.AttemptedBy), Args: json.RawMessage(j.EncodedArgs),
	}
	if len(out.Args) == 0 {
		out.Args = json.RawMessage("{}")
	}
	if n := len(j.Errors); n > 0 {
		out.LastError = j.Errors[n-1].Error
	}
	if o := j.Output(); len(o) > 0 {
		out.Output = json.RawMessage(o)
	}
	return out
}

// jobFilter is the --kind/--queue/--state selection shared by the jobs
// subcommands.
type jobFilter struct {
	kinds  []string
	queues []string
	states []string
}

func (f *jobFilter) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.kinds, "kind", nil, "only jobs of these kinds (repeat or comma-separate)")
	fl.StringSliceVar(&f.queues, "queue", nil, "only jobs on these queues")
	fl.StringSliceVar(&f.states, "state", nil, "only jobs in these states: "+strings.Join(stateNames(), ", "))
}

func (f *jobFilter) empty() bool { return len(f.kinds)+len(f.queues)+len(f.states) == 0 }

func stateNames() []string {
	var out []string
	for _, s := range rivertype.JobStates() {
		out = append(out, string(s))
	}
	slices.Sort(out)
	return out
}

func (f *jobFilter) jobStates() ([]rivertype.JobState, error) {
	var out []rivertype.JobState
	for _, s := range f.states {
		s = strings.ToLower(strings.TrimSpace(s))
		if !slices.Contains(stateNames(), s) {
			return nil, usagef("--state %q: not a job state (%s)", s, strings.Join(stateNames(), ", "))
		}
		out = append(out, rivertype.JobState(s))
	}
	return out, nil
}

func (f *jobFilter) String() string {
	var parts []string
	if len(f.kinds) > 0 {
		parts = append(parts, "kind="+strings.Join(f.kinds, ","))
	}
	if len(f.queues) > 0 {
		parts = append(parts, "queue="+strings.Join(f.queues, ","))
	}
	if len(f.states) > 0 {
		parts = append(parts, "state="+strings.Join(f.states, ","))
	}
	if len(parts) == 0 {
		return "all jobs"
	}
	return strings.Join(parts, " ")
}

func (f *jobFilter) listParams() (*river.JobListParams, error) {
	p := river.NewJobListParams()
	if len(f.kinds) > 0 {
		p = p.Kinds(f.kinds...)
	}
	if len(f.queues) > 0 {
		p = p.Queues(f.queues...)
	}
	states, err := f.jobStates()
	if err != nil {
		return nil, err
	}
	if len(states) > 0 {
		p = p.States(states...)
	}
	return p, nil
}

func (a *app) jobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, cancel, retry, delete and purge jobs",
		Args:  cobra.ArbitraryArgs,
		RunE:  subcommandRequired,
	}
	cmd.AddCommand(a.jobsListCmd(), a.jobsPurgeCmd())
	for _, action := range []jobAction{actionCancel, actionRetry, actionDelete} {
		cmd.AddCommand(a.jobsActionCmd(action))
	}
	return cmd
}

// withControl opens the pool and a control client for a jobs or inspect
// subcommand.
func (a *app) withControl(ctx context.Context, fn func(pool *pgxpool.Pool, client *river.Client[pgx.Tx]) error) error {
	pool, err := a.openPool(ctx, poolOptions{})
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := a.controlClient(pool)
	if err != nil {
		return err
	}
	return fn(pool, client)
}

func (a *app) jobsListCmd() *cobra.Command {
	var (
		filter jobFilter
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 10_000 {
				return usagef("--limit %d: must be between 1 and 10000", limit)
			}
			params, err := filter.listParams()
			if err != nil {
				return err
			}
			params = params.First(limit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
			return a.withControl(cmd.Context(), func(_ *pgxpool.Pool, client *river.Client[pgx.Tx]) error {
				res, err := client.JobList(cmd.Context(), params)
				if err != nil {
					return fmt.Errorf("list jobs: %w", err)
				}
				return a.printJobs(res.Jobs, asJSON)
			})
		},
	}
	filter.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 50, "most jobs to list")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printJobs(jobs []*rivertype.JobRow, asJSON bool) error {
	if asJSON {
		out := make([]jobJSON, 0, len(jobs))
		for _, j := range jobs {
			out = append(out, jobJSONOf(j))
		}
		return printJSON(a.stdout, out)
	}
	t := newTable(a.stdout, "ID", "KIND", "QUEUE", "STATE", "ATTEMPT", "CREATED", "SCHEDULED", "LAST ERROR")
	for _, j := range jobs {
		lastErr := ""
		if n := len(j.Errors); n > 0 {
			lastErr = truncate(j.Errors[n-1].Error, 60)
		}
		t.row(j.ID, j.Kind, j.Queue, j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), a.fmtTimeV(j.CreatedAt), a.fmtTimeV(j.ScheduledAt), lastErr)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(jobs) == 0 {
		fmt.Fprintln(a.stdout, "(no jobs)")
	}
	return nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

type jobAction string

const (
	actionCancel jobAction = "cancel"
	actionRetry  jobAction = "retry"
	actionDelete jobAction = "delete"
)

var actionDocs = map[jobAction]struct{ short, long string }{
	actionCancel: {
		"Cancel jobs by ID or by filter (a running job's runner is told to stop it)",
		"cancel cancels jobs: waiting ones at once, running ones by telling their runner\n(through Postgres) to cancel the job's context. Finalized jobs are left as they are.",
	},
	actionRetry: {
		"Retry jobs by ID or by filter (make them available now)",
		"retry makes jobs available to be worked now: discarded, cancelled, completed,\nscheduled or retryable ones alike. Running jobs are left alone.",
	},
	actionDelete: {
		"Delete jobs by ID or by filter (running jobs are never deleted)",
		"delete removes jobs from the database. Running jobs are never deleted.",
	},
}

func (a *app) jobsActionCmd(action jobAction) *cobra.Command {
	var (
		filter jobFilter
		yes    bool
		asJSON bool
	)
	doc := actionDocs[action]
	cmd := &cobra.Command{
		Use:   string(action) + " [ID...]",
		Short: doc.short,
		Long: doc.long + `

Give job IDs, or filters (--kind, --queue, --state) to act on every job they
select; with filters it asks for confirmation unless --yes.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var ids []int64
			for _, arg := range args {
				id, err := strconv.ParseInt(arg, 10, 64)
				if err != nil || id < 1 {
					return usagef("%q is not a job ID", arg)
				}
				ids = append(ids, id)
			}
			switch {
			case len(ids) > 0 && !filter.empty():
				return usagef("give job IDs or filters, not both")
			case len(ids) == 0 && filter.empty():
				return usagef("%s needs job IDs or at least one of --kind, --queue, --state", cmd.CommandPath())
			}
			params, err := filter.listParams()
			if err != nil {
				return err
			}
			return a.withControl(ctx, func(_ *pgxpool.Pool, client *river.Client[pgx.Tx]) error {
				if len(ids) == 0 {
					// The jobs are listed before the question, so that the
					// action applies to exactly the jobs it counted.
					ids, err = matchingIDs(ctx, client, params)
					if err != nil {
						return err
					}
					if len(ids) == 0 {
						fmt.Fprintf(a.stdout, "no jobs match (%s)\n", filter.String())
						return nil
					}
					if !yes {
						if err := a.confirm(fmt.Sprintf("%s %d jobs (%s)?", titleCase(string(action)), len(ids), filter.String()), "--yes"); err != nil {
							return err
						}
					}
				}
				return a.applyAction(ctx, client, action, ids, asJSON)
			})
		},
	}
	filter.register(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// matchingIDs pages through the jobs a filter selects.
func matchingIDs(ctx context.Context, client *river.Client[pgx.Tx], params *river.JobListParams) ([]int64, error) {
	var ids []int64
	params = params.First(1000)
	for {
		res, err := client.JobList(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		for _, j := range res.Jobs {
			ids = append(ids, j.ID)
		}
		if len(res.Jobs) < 1000 || res.LastCursor == nil {
			return ids, nil
		}
		params = params.After(res.LastCursor)
	}
}

// applyAction cancels, retries or deletes jobs one by one, printing each
// outcome; a job that does not exist is reported and makes the command
// fail after the others are done.
func (a *app) applyAction(ctx context.Context, client *river.Client[pgx.Tx], action jobAction, ids []int64, asJSON bool) error {
	var (
		done     []jobJSON
		notFound []int64
		skipped  []jobJSON
	)
	for _, id := range ids {
		var (
			job *rivertype.JobRow
			err error
		)
		switch action {
		case actionCancel:
			// River returns a finalized job unchanged; look first so that
			// "already cancelled" is not reported as done.
			job, err = client.JobGet(ctx, id)
			if err == nil && job.FinalizedAt != nil {
				skipped = append(skipped, jobJSONOf(job))
				continue
			}
			if err == nil {
				job, err = client.JobCancel(ctx, id)
			}
		case actionRetry:
			job, err = client.JobRetry(ctx, id)
		case actionDelete:
			job, err = client.JobDelete(ctx, id)
		}
		switch {
		case errors.Is(err, rivertype.ErrNotFound):
			notFound = append(notFound, id)
			continue
		case errors.Is(err, rivertype.ErrJobRunning):
			skipped = append(skipped, jobJSON{ID: id, State: string(rivertype.JobStateRunning)})
			continue
		case err != nil:
			return fmt.Errorf("%s job %d: %w", action, id, err)
		}
		if action == actionRetry && job.State == rivertype.JobStateRunning {
			// Running jobs are not retried.
			skipped = append(skipped, jobJSONOf(job))
			continue
		}
		done = append(done, jobJSONOf(job))
	}
	if asJSON {
		if err := printJSON(a.stdout, map[string]any{string(action): nonNil(done), "skipped": nonNil(skipped), "not_found": nonNil(notFound)}); err != nil {
			return err
		}
	} else {
		past := map[jobAction]string{actionCancel: "cancelled", actionRetry: "retried", actionDelete: "deleted"}[action]
		for _, j := range done {
			if action == actionCancel && j.State == string(rivertype.JobStateRunning) {
				fmt.Fprintf(a.stdout, "cancelling job %d (%s): its runner has been told to stop it\n", j.ID, j.Kind)
				continue
			}
			fmt.Fprintf(a.stdout, "%s job %d (%s, now %s)\n", past, j.ID, j.Kind, j.State)
		}
		for _, j := range skipped {
			fmt.Fprintf(a.stdout, "skipped job %d: it is %s\n", j.ID, j.State)
		}
		fmt.Fprintf(a.stdout, "%d jobs %s\n", len(done), past)
	}
	if len(notFound) > 0 {
		return fmt.Errorf("no such job: %s", joinInt64s(notFound))
	}
	return nil
}

func joinInt64s(ns []int64) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(parts, ", ")
}

// waitingStates are the states celery purge empties: jobs not yet
// started. Purging running jobs is not possible, and finalized ones are
// history (pass --state to purge them anyway).
var waitingStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateScheduled,
}

func (a *app) jobsPurgeCmd() *cobra.Command {
	var (
		filter jobFilter
		yes    bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete every waiting job (celery purge), optionally by kind or queue",
		Long: `purge deletes the jobs waiting to run (available, scheduled, retryable,
pending), like celery purge, or with --state the jobs in the given states.
Running jobs are never deleted. It asks for confirmation on the terminal
unless --yes; without a terminal (cron, CI, a pipe) it refuses unless --yes.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			states, err := filter.jobStates()
			if err != nil {
				return err
			}
			if len(states) == 0 {
				states = waitingStates
				for _, s := range states {
					filter.states = append(filter.states, string(s))
				}
			}
			states = slices.DeleteFunc(states, func(s rivertype.JobState) bool { return s == rivertype.JobStateRunning })
			if len(states) == 0 {
				return usagef("running jobs cannot be purged (cancel them with jobs cancel)")
			}
			return a.withControl(ctx, func(pool *pgxpool.Pool, client *river.Client[pgx.Tx]) error {
				// River can delete jobs by filter but not count them: the
				// count for the question and the progress is SQL.
				counts, err := a.countJobs(ctx, pool, filter.kinds, filter.queues, states)
				if err != nil {
					return err
				}
				var n int64
				for _, c := range counts {
					n += c.n
				}
				if n == 0 {
					if asJSON {
						return printJSON(a.stdout, map[string]any{"deleted": 0})
					}
					fmt.Fprintf(a.stdout, "nothing to purge (%s)\n", filter.String())
					return nil
				}
				if !yes {
					if err := a.confirm(fmt.Sprintf("Delete %d jobs (%s)?", n, filter.String()), "--yes"); err != nil {
						return err
					}
				}
				params := river.NewJobDeleteManyParams().States(states...).First(1000)
				if len(filter.kinds) > 0 {
					params = params.Kinds(filter.kinds...)
				}
				if len(filter.queues) > 0 {
					params = params.Queues(filter.queues...)
				}
				// The jobs go 1,000 per statement: a purge of many reports
				// its progress once it has taken more than progressQuiet.
				prog := newProgress(a.stderr, a.logger, purgeProgress, "purge progress", int(n))
				prog.quiet = progressQuiet
				deleted := 0
				for {
					res, err := client.JobDeleteMany(ctx, params)
					if err != nil {
						prog.finish()
						return fmt.Errorf("purge after %d deleted: %w", deleted, err)
					}
					deleted += len(res.Jobs)
					if len(res.Jobs) == 0 {
						break
					}
					prog.add(len(res.Jobs), 0)
				}
				prog.finish()
				a.logger.Info("purged jobs", "deleted", deleted, "filter", filter.String())
				if asJSON {
					return printJSON(a.stdout, map[string]any{"deleted": deleted})
				}
				fmt.Fprintf(a.stdout, "purged %d jobs (%s)\n", deleted, filter.String())
				return nil
			})
		},
	}
	filter.register(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
