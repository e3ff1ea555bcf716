package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/migrations"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// seedJSON is what setup did with one default schedule.
type seedJSON struct {
	schedule.Seeded
	// Exists is false when the schedule was seeded once and removed
	// since: it stays removed.
	Exists bool `json:"exists"`
}

func (a *app) setupCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Check the database, seed the default schedules once and show the stored schedules (manage.py setup_periodic_tasks)",
		Long: `setup is the equivalent of manage.py setup_periodic_tasks, and idempotent.

It checks that the migrations are applied, creates the default schedules
that were never seeded (the attendance sweep, attendance-sweep, every
sweep.interval), and prints the stored schedules with their last and next
runs. A default schedule is seeded once: after that it is the operator's
(wasso-runner schedule update, disable, remove), and setup leaves it as it
is, changed, disabled or removed, whatever sweep.interval says. run seeds
the same way at start, so a deployment that never runs setup sweeps too.

With --no-periodic (run.periodic false) setup seeds nothing.`,
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
			store, err := a.newScheduleStore(nil)
			if err != nil {
				return err
			}
			rc := a.cfg.RiverConfig().WithDefaults()
			var seeded []schedule.Seeded
			if !rc.NoSchedules {
				if seeded, err = schedule.Seed(ctx, pool, store, wassoriver.DefaultSchedules(rc, time.Now())); err != nil {
					return fmt.Errorf("seed the default schedules: %w", err)
				}
			}
			list, err := store.List(ctx, pool)
			if err != nil {
				return err
			}
			exists := map[string]*schedule.Schedule{}
			for i := range list {
				exists[list[i].Name] = &list[i]
			}
			seeds := make([]seedJSON, 0, len(seeded))
			for _, s := range seeded {
				seeds = append(seeds, seedJSON{Seeded: s, Exists: exists[s.Name] != nil})
			}
			leader, err := a.leader(ctx, pool)
			if err != nil {
				return err
			}
			notify, err := a.setupNotifyCheck(ctx, pool)
			if err != nil {
				return err
			}
			discovery := map[string]any{"enabled": !rc.NoDeadlines}
			if !rc.NoDeadlines {
				discovery["interval"] = rc.DiscoveryInterval.String()
				discovery["horizon"] = rc.DiscoveryHorizon.String()
			}
			if asJSON {
				return printJSON(a.stdout, map[string]any{
					"migrations": "up to date", "leader": leader, "deadline_discovery": discovery, "notifications": notify,
					"seeded": seeds, "schedules": schedulesJSON(list),
				})
			}
			fmt.Fprintln(a.stdout, "migrations: up to date")
			if leader != nil {
				fmt.Fprintf(a.stdout, "leader: %s (elected %s)\n", leader.ID, a.fmtTimeV(leader.ElectedAt))
			} else {
				fmt.Fprintln(a.stdout, "leader: none (no runner is running; the first to start is elected and runs the schedules)")
			}
			if rc.NoDeadlines {
				fmt.Fprintln(a.stdout, "deadline discovery: off (deadlines.enabled is false: events are settled by the sweep)")
			} else {
				fmt.Fprintf(a.stdout, "deadline discovery: every %s while leader, scheduling each event's settlement up to %s ahead\n", rc.DiscoveryInterval, rc.DiscoveryHorizon)
			}
			if notify.Delivered {
				fmt.Fprintln(a.stdout, "notifications: delivered (runners are woken at once)")
				if notify.Pooler != "" {
					fmt.Fprintf(a.stdout, "pooler: %s\n", notify.Pooler)
				}
			} else {
				fmt.Fprintf(a.stdout, "notifications: not delivered: %s; runners will poll instead (%s)\n", notify.Error, notify.Hint)
			}
			a.printSeeded(seeds, exists, rc.NoSchedules)
			return printSchedules(a.stdout, list)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().Duration("sweep-interval", attendance.SweepIntervalDefault, "interval the attendance-sweep schedule is seeded with, if it never was (key sweep.interval)")
	cmd.Flags().Bool("no-periodic", false, "seed nothing, as a runner started with --no-periodic (key run.periodic: false)")
	cmd.Flags().Bool("no-deadlines", false, "show a runner started with --no-deadlines (key deadlines.enabled: false)")
	return cmd
}

// notifyJSON is what setup found of notifications.
type notifyJSON struct {
	Delivered bool   `json:"delivered"`
	Error     string `json:"error,omitempty"`
	Hint      string `json:"hint,omitempty"`
	// Pooler is sessionPoolerWarning when database_url goes through a
	// pooler in session mode.
	Pooler string `json:"pooler,omitempty"`
}

// setupNotifyCheck checks, as run does at start, whether notifications
// reach a runner of this configuration: through database.listen_url when
// it is set, else through database_url.
func (a *app) setupNotifyCheck(ctx context.Context, pool *pgxpool.Pool) (notifyJSON, error) {
	listen, err := a.openListenPool(ctx)
	if err != nil {
		return notifyJSON{}, err
	}
	if listen != nil {
		defer listen.Close()
	}
	err = wassoriver.CheckNotify(ctx, pool, listen, 0)
	if err == nil {
		out := notifyJSON{Delivered: true}
		if listen == nil && sessionPooled(ctx, pool, true) {
			out.Pooler = sessionPoolerWarning
		}
		return out, nil
	}
	if ctx.Err() != nil {
		return notifyJSON{}, ctx.Err()
	}
	return notifyJSON{Error: a.redact.redact(oneLine(err.Error())), Hint: notifyHint(listen != nil)}, nil
}

// printSeeded writes the line saying which default schedules setup
// created and which it left as the operator set them.
func (a *app) printSeeded(seeds []seedJSON, exists map[string]*schedule.Schedule, off bool) {
	if off {
		fmt.Fprintln(a.stdout, "default schedules: not seeded (run.periodic is false: runners of this configuration run no schedules)")
		return
	}
	var created, kept []string
	for _, s := range seeds {
		switch {
		case s.Outcome == schedule.SeedCreated:
			created = append(created, fmt.Sprintf("%s (%s)", s.Name, timetable(exists[s.Name])))
		case !s.Exists:
			kept = append(kept, fmt.Sprintf("%s (removed; seeded %s)", s.Name, a.fmtTimeV(s.SeededAt)))
		case s.Outcome == schedule.SeedExisting:
			kept = append(kept, fmt.Sprintf("%s (%s, made before it was seeded)", s.Name, timetable(exists[s.Name])))
		default:
			state := timetable(exists[s.Name])
			if !exists[s.Name].Enabled {
				state += ", disabled"
			}
			kept = append(kept, fmt.Sprintf("%s (%s; seeded %s)", s.Name, state, a.fmtTimeV(s.SeededAt)))
		}
	}
	if len(created) > 0 {
		fmt.Fprintf(a.stdout, "default schedules created: %s\n", strings.Join(created, ", "))
	}
	if len(kept) > 0 {
		fmt.Fprintf(a.stdout, "default schedules left as the operator set them: %s\n", strings.Join(kept, ", "))
	}
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
