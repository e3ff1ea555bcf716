package runner

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// newScheduleImportCmd is `schedule import-celery-beat`: the one-time
// carrying over of the Django admin's periodic tasks (django-celery-beat's
// tables, in the same database) into wasso_schedule, when Celery is
// switched off. It is a free function, not a method, so that the schedule
// command group adds it without the two files sharing anything else.
func newScheduleImportCmd(a *app) *cobra.Command {
	var (
		dryRun bool
		asJSON bool
		tasks  []string
	)
	cmd := &cobra.Command{
		Use:   "import-celery-beat [--dry-run] [--json] [--task TASK=KIND]...",
		Short: "Create a schedule for each django-celery-beat periodic task (the Django admin's), once, leaving Django's tables as they are",
		Long: `import-celery-beat reads the periodic tasks of django-celery-beat
(django_celery_beat_periodictask and its interval, crontab, solar and clocked
schedules) from the tables of the configured database that search_path finds,
and creates a schedule in wasso_schedule for each one that has an equivalent
here. Django's tables are only read, never written or locked. Once the
runners run the imported schedules, stop celery beat (or disable the tasks in
the Django admin): until then both enqueue the work.

Each task prints one line: created, unchanged (imported before, same
definition), exists (a schedule of that name differs, as an operator left it:
never overwritten) or skipped with the reason, then a summary. Running it
again changes nothing.

The Celery task names map to job kinds through schedules.celery_tasks
(default: scheduler.tasks.mark_absent_for_past_events=attendance.sweep), plus
--task; tasks without a kind are skipped. Interval and crontab schedules are
imported (the crontab's time zone becomes the schedule's); solar and clocked
ones are not. Names the schedules refuse are rewritten (runs of other
characters become "-") and reported.

--dry-run does the same import, the store's checks included, in a transaction
that is rolled back, and writes nothing.

Exit codes: 0 when the import ran, even if tasks were skipped; 1 when the
database has no django-celery-beat tables or a query failed (nothing was
written); 2 for bad flags or configuration.`,
		Example: `  wasso-runner schedule import-celery-beat --dry-run
  wasso-runner schedule import-celery-beat --task reports.tasks.weekly_digest=attendance.notify_absent --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kinds, err := a.celeryTaskKinds(tasks)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withScheduleStore(ctx, false, func(pool *pgxpool.Pool, store *schedule.Store) error {
				report, err := schedule.ImportCeleryBeat(ctx, pool, store, schedule.CeleryImportOptions{
					TaskKinds: kinds,
					DryRun:    dryRun,
					Logger:    a.logger,
				})
				if errors.Is(err, schedule.ErrNoCeleryBeat) {
					return fmt.Errorf("nothing to import: %w", err)
				}
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, report)
				}
				for i := range report.Entries {
					fmt.Fprintln(a.stdout, report.Entries[i].Line(report.DryRun))
				}
				fmt.Fprintln(a.stdout, report.Summary())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "report what the import would do and write nothing")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringArrayVar(&tasks, "task", nil, "map a Celery task to a job kind, TASK=KIND (repeatable; adds to schedules.celery_tasks)")
	return cmd
}

// celeryTaskKinds is the Celery task → job kind mapping of an import:
// schedules.celery_tasks with the --task flags over it.
func (a *app) celeryTaskKinds(flags []string) (map[string]string, error) {
	kinds := maps.Clone(a.cfg.Schedules.CeleryTasks)
	if kinds == nil {
		kinds = map[string]string{}
	}
	for _, f := range flags {
		task, kind, ok := strings.Cut(f, "=")
		task, kind = strings.TrimSpace(task), strings.TrimSpace(kind)
		if !ok || task == "" || kind == "" {
			return nil, usagef("--task %q: want TASK=KIND, such as %s=attendance.sweep", f, wassoriver.CeleryTaskMarkAbsent)
		}
		// The configured names are lower-cased by the loader; drop one
		// the flag overrides so the flag wins whatever its case.
		for name := range kinds {
			if strings.EqualFold(name, task) {
				delete(kinds, name)
			}
		}
		kinds[task] = kind
	}
	return kinds, nil
}
