package runner

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/migrations"
)

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, roll back or show the scheduler's migrations (River's tables and the wasso_ tables)",
		Args:  cobra.ArbitraryArgs,
		RunE:  subcommandRequired,
	}
	cmd.AddCommand(a.migrateUpCmd(), a.migrateDownCmd(), a.migrateStatusCmd())
	return cmd
}

func (a *app) migrationOptions() migrations.Options {
	return migrations.Options{Logger: a.logger, Schema: a.cfg.Schema}
}

// notReady words an error of migrations.CheckScheduler for the commands
// that refuse to work on a database that is not ready (Main's hint adds
// the command that applies pending migrations).
func notReady(err error) error {
	return fmt.Errorf("database not ready: %w", err)
}

// warnNewerMigrations logs the migrations a newer River or a newer build
// of the scheduler applied: this build runs on such a database (see
// migrations.CheckScheduler), and the operator should know it is older.
func (a *app) warnNewerMigrations(st *migrations.State) {
	if st == nil || len(st.RiverNewer)+len(st.WassoNewer) == 0 {
		return
	}
	a.logger.Warn("the database has migrations newer than this build; running anyway, as every migration this build needs is applied",
		slog.Any("river_newer", st.RiverNewer), slog.Int("river_latest_known", st.RiverLatest),
		slog.Any("wasso_newer", st.WassoNewer))
}

func (a *app) migrateUpCmd() *cobra.Command {
	var withWasso bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Apply River's migrations and the scheduler's (idempotent)",
		Long: `up applies River's migrations and then the scheduler's own, each in its own
transaction. Running it again changes nothing. Several runners may run it at
once: they serialise on an advisory lock.

The Wasso tables (events, attendances, ...) belong to the Django backend and
must exist; on a scratch database, --with-wasso-schema creates them first.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.openPool(cmd.Context(), poolOptions{})
			if err != nil {
				return err
			}
			defer pool.Close()
			opts := a.migrationOptions()
			opts.WithWassoSchema = withWasso
			res, err := migrations.Up(cmd.Context(), pool, opts)
			if err != nil {
				return fmt.Errorf("migrate up: %w", err)
			}
			if res.WassoSchemaCreated {
				fmt.Fprintf(a.stdout, "created the Wasso tables: %s\n", strings.Join(migrations.WassoTables, ", "))
			}
			printVersions(a, "river", res.RiverVersions, "applied")
			printVersions(a, "wasso", res.WassoVersions, "applied")
			return nil
		},
	}
	cmd.Flags().BoolVar(&withWasso, "with-wasso-schema", false, "create the Wasso tables first when none exist (scratch databases only)")
	return cmd
}

func printVersions(a *app, component string, versions []int, verb string) {
	if len(versions) == 0 {
		fmt.Fprintf(a.stdout, "%s: nothing to do\n", component)
		return
	}
	fmt.Fprintf(a.stdout, "%s: %s %s\n", component, verb, joinInts(versions))
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprint(n)
	}
	return strings.Join(parts, ", ")
}

func (a *app) migrateDownCmd() *cobra.Command {
	var (
		target int
		river  bool
		yes    bool
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Roll back the scheduler's migrations (and with --river, River's tables)",
		Long: `down rolls back the scheduler's migrations newer than --target-version
(all of them by default), newest first. The Wasso tables' data is never
touched. With --river it also drops River's tables, and with them every job.

It asks for confirmation unless --yes is given.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if target < 0 {
				return usagef("--target-version %d: must be zero or positive", target)
			}
			pool, err := a.openPool(cmd.Context(), poolOptions{})
			if err != nil {
				return err
			}
			defer pool.Close()
			if !yes {
				what := "Roll back the scheduler's migrations"
				if target > 0 {
					what += fmt.Sprintf(" newer than %d", target)
				}
				if river {
					what += " and drop River's tables (every job is lost)"
				}
				if err := a.confirm(what+"?", "--yes"); err != nil {
					return err
				}
			}
			res, err := migrations.Down(cmd.Context(), pool, a.migrationOptions(), migrations.DownOptions{River: river, TargetVersion: target})
			if err != nil {
				return fmt.Errorf("migrate down: %w", err)
			}
			printVersions(a, "wasso", res.WassoVersions, "rolled back")
			if river {
				printVersions(a, "river", res.RiverVersions, "rolled back")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&target, "target-version", 0, "scheduler migration to roll back to (exclusive); 0 rolls back all")
	f.BoolVar(&river, "river", false, "also drop River's tables (every job, queue and leader row)")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

type migrationStatusJSON struct {
	UpToDate bool `json:"up_to_date"`
	River    struct {
		Applied []int `json:"applied"`
		Latest  int   `json:"latest"`
		Pending []int `json:"pending"`
		// Newer are versions applied by a newer River.
		Newer []int `json:"newer"`
	} `json:"river"`
	Wasso struct {
		Applied []appliedMigrationJSON `json:"applied"`
		Pending []pendingMigrationJSON `json:"pending"`
		// Newer are versions applied by a newer build of the scheduler.
		Newer []int `json:"newer"`
	} `json:"wasso"`
	MissingWassoTables []string `json:"missing_wasso_tables"`
}

type appliedMigrationJSON struct {
	Version   int       `json:"version"`
	AppliedAt time.Time `json:"applied_at"`
}

type pendingMigrationJSON struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
}

func (a *app) migrateStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which migrations are applied",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.openPool(cmd.Context(), poolOptions{})
			if err != nil {
				return err
			}
			defer pool.Close()
			st, err := migrations.Status(cmd.Context(), pool, a.migrationOptions())
			if err != nil {
				return fmt.Errorf("migrate status: %w", err)
			}
			out := migrationStatusJSON{UpToDate: st.UpToDate(), MissingWassoTables: st.MissingWassoTables}
			out.River.Applied = st.RiverApplied
			out.River.Latest = st.RiverLatest
			out.River.Pending = nonNil(st.RiverPending)
			out.River.Newer = nonNil(st.RiverNewer)
			out.Wasso.Newer = nonNil(st.WassoNewer)
			for _, v := range slices.Sorted(maps.Keys(st.WassoApplied)) {
				out.Wasso.Applied = append(out.Wasso.Applied, appliedMigrationJSON{Version: v, AppliedAt: st.WassoApplied[v]})
			}
			for _, m := range st.WassoPending {
				out.Wasso.Pending = append(out.Wasso.Pending, pendingMigrationJSON{Version: m.Version, Name: m.Name})
			}
			if asJSON {
				return printJSON(a.stdout, out)
			}
			riverCurrent := 0
			if n := len(st.RiverApplied); n > 0 {
				riverCurrent = st.RiverApplied[n-1]
			}
			t := newTable(a.stdout, "COMPONENT", "CURRENT", "LATEST", "STATE")
			t.row("river", riverCurrent, st.RiverLatest, stateWord(len(st.RiverPending) == 0, len(st.RiverNewer) > 0))
			latest := migrations.All()[len(migrations.All())-1].Version
			wassoCurrent := 0
			if len(out.Wasso.Applied) > 0 {
				wassoCurrent = out.Wasso.Applied[len(out.Wasso.Applied)-1].Version
			}
			t.row("wasso", wassoCurrent, latest, stateWord(len(st.WassoPending) == 0, len(st.WassoNewer) > 0))
			tables := "present"
			if len(st.MissingWassoTables) > 0 {
				tables = "missing: " + strings.Join(st.MissingWassoTables, ",")
			}
			t.row("wasso tables", "-", "-", tables)
			if err := t.flush(); err != nil {
				return err
			}
			for _, m := range out.Wasso.Applied {
				fmt.Fprintf(a.stdout, "  applied %03d at %s\n", m.Version, a.fmtTimeV(m.AppliedAt))
			}
			for _, m := range st.WassoPending {
				fmt.Fprintf(a.stdout, "  pending %03d_%s\n", m.Version, m.Name)
			}
			if len(st.RiverPending) > 0 {
				fmt.Fprintf(a.stdout, "  pending river %s\n", joinInts(st.RiverPending))
			}
			if n := len(st.RiverNewer) + len(st.WassoNewer); n > 0 {
				fmt.Fprintln(a.stdout, "newer migrations than this build knows are applied (a newer River or wasso-runner migrated the database); this build runs on it")
			}
			if !st.UpToDate() {
				fmt.Fprintln(a.stdout, "not up to date: run wasso-runner migrate up")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func stateWord(ok, newer bool) string {
	switch {
	case !ok:
		return "pending"
	case newer:
		return "newer than this build"
	default:
		return "up to date"
	}
}
