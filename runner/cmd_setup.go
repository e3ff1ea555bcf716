package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/migrations"
	wassoriver "github.com/wasso/scheduler/river"
)

// periodicJob describes one periodic job a runner with this configuration
// enqueues while it is leader.
type periodicJob struct {
	ID         string        `json:"id"`
	Kind       string        `json:"kind"`
	Queue      string        `json:"queue"`
	Interval   time.Duration `json:"-"`
	Schedule   string        `json:"schedule"`
	RunOnStart bool          `json:"run_on_start"`
	// LastRun is when the latest job of this kind was scheduled, from the
	// database (any runner's).
	LastRun *time.Time `json:"last_run"`
	// NextRun is LastRun plus the interval while a leader is enqueueing;
	// nil when no runner has enqueued one for over an interval (the next
	// leader enqueues one as it starts).
	NextRun *time.Time `json:"next_run"`
}

// periodicJobs lists the periodic jobs of the configuration. River's
// PeriodicJob is opaque (its schedule and ID cannot be read back), so the
// list is built from the same configuration wassoriver.PeriodicJobs uses.
func (a *app) periodicJobs(ctx context.Context, db *pgxpool.Pool) ([]periodicJob, error) {
	rc := a.cfg.RiverConfig().WithDefaults()
	if rc.NoPeriodic {
		return nil, nil
	}
	// Built (and discarded) so that a configuration the library refuses
	// fails here as it would in run.
	if _, err := wassoriver.PeriodicJobs(rc); err != nil {
		return nil, err
	}
	sweep := periodicJob{
		ID:         attendance.PeriodicSweepID,
		Kind:       attendance.SweepKind,
		Queue:      wassoriver.QueueDefault,
		Interval:   rc.SweepInterval,
		Schedule:   "every " + rc.SweepInterval.String(),
		RunOnStart: true,
	}
	var last *time.Time
	// river_job_kind index.
	err := db.QueryRow(ctx, `SELECT max(scheduled_at) FROM `+a.qualify("river_job")+` WHERE kind = $1`, sweep.Kind).Scan(&last)
	if err != nil {
		return nil, fmt.Errorf("read last %s: %w", sweep.Kind, err)
	}
	sweep.LastRun = last
	if last != nil {
		next := last.Add(sweep.Interval)
		if time.Since(next) < sweep.Interval {
			sweep.NextRun = &next
		}
	}
	return []periodicJob{sweep}, nil
}

func (a *app) setupCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Check the database is ready and show the periodic jobs (manage.py setup_periodic_tasks)",
		Long: `setup is the equivalent of manage.py setup_periodic_tasks, and idempotent.

Periodic jobs are part of the runner's configuration (the attendance sweep
every sweep.interval), so there is nothing to write: setup checks that the
migrations are applied and prints the periodic jobs a runner with this
configuration enqueues while it is the leader, with the last and next run.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pool, err := a.openPool(ctx, poolOptions{})
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := migrations.CheckScheduler(ctx, pool, a.migrationOptions()); err != nil {
				var missing *migrations.MissingTableError
				if errors.As(err, &missing) || errors.Is(err, migrations.ErrMigrationsPending) {
					return notReady(err)
				}
				return err
			}
			jobs, err := a.periodicJobs(ctx, pool)
			if err != nil {
				return err
			}
			leader, err := a.leader(ctx, pool)
			if err != nil {
				return err
			}
			rc := a.cfg.RiverConfig().WithDefaults()
			discovery := map[string]any{"enabled": !rc.NoDeadlines}
			if !rc.NoDeadlines {
				discovery["interval"] = rc.DiscoveryInterval.String()
				discovery["horizon"] = rc.DiscoveryHorizon.String()
			}
			if asJSON {
				return printJSON(a.stdout, map[string]any{"migrations": "up to date", "periodic_jobs": nonNil(jobs), "leader": leader, "deadline_discovery": discovery})
			}
			fmt.Fprintln(a.stdout, "migrations: up to date")
			if leader != nil {
				fmt.Fprintf(a.stdout, "leader: %s (elected %s)\n", leader.ID, a.fmtTimeV(leader.ElectedAt))
			} else {
				fmt.Fprintln(a.stdout, "leader: none (no runner is running; the first to start is elected)")
			}
			if rc.NoDeadlines {
				fmt.Fprintln(a.stdout, "deadline discovery: off (deadlines.enabled is false: events are settled by the sweep)")
			} else {
				fmt.Fprintf(a.stdout, "deadline discovery: every %s while leader, scheduling each event's settlement up to %s ahead\n", rc.DiscoveryInterval, rc.DiscoveryHorizon)
			}
			if len(jobs) == 0 {
				fmt.Fprintln(a.stdout, "periodic jobs: none (run.periodic is false: this runner only works jobs)")
				return nil
			}
			now := time.Now()
			t := newTable(a.stdout, "PERIODIC JOB", "KIND", "QUEUE", "SCHEDULE", "RUN ON START", "LAST RUN", "NEXT RUN")
			for _, j := range jobs {
				next := "when a runner is elected leader"
				if j.NextRun != nil {
					next = a.fmtTime(j.NextRun) + " (" + fmtAge(now, j.NextRun) + ")"
				}
				t.row(j.ID, j.Kind, j.Queue, j.Schedule, yesNo(j.RunOnStart), a.fmtTime(j.LastRun), next)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().Duration("sweep-interval", attendance.SweepIntervalDefault, "sweep interval to show (key sweep.interval)")
	cmd.Flags().Bool("no-periodic", false, "show the jobs of a runner started with --no-periodic (key run.periodic: false)")
	cmd.Flags().Bool("no-deadlines", false, "show a runner started with --no-deadlines (key deadlines.enabled: false)")
	return cmd
}

// leaderInfo is the elected leader, from river_leader.
type leaderInfo struct {
	ID        string    `json:"id"`
	ElectedAt time.Time `json:"elected_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *app) leader(ctx context.Context, db *pgxpool.Pool) (*leaderInfo, error) {
	var l leaderInfo
	err := db.QueryRow(ctx, `SELECT leader_id, elected_at, expires_at FROM `+a.qualify("river_leader")+` WHERE expires_at > now()`).
		Scan(&l.ID, &l.ElectedAt, &l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read leader: %w", err)
	}
	return &l, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// nonNil makes JSON print [] rather than null for an empty list.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
