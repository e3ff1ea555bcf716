// Package migrations brings a database to the schema the Wasso scheduler
// needs: River's own tables (applied through rivermigrate, never copied
// SQL), the scheduler's wasso_ tables (embedded, numbered SQL files, each
// applied in its own transaction), and, for scratch databases only, the
// subset of the Wasso schema that the scheduler reads and writes.
//
// Every step is idempotent: migrating a database that is already up to date
// changes nothing. A migration that fails is rolled back whole, so the
// database stays at the last version that applied cleanly.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed wasso/*.sql
var wassoFS embed.FS

//go:embed wasso_schema.sql
var wassoSchemaSQL string

// WassoTables are the Django-owned tables the scheduler reads and writes, in
// the order their foreign keys need them.
var WassoTables = []string{"club_club", "club_generation", "club_member", "generation_mapping", "events", "attendances"}

// ErrMissingTable is returned (wrapped in a *MissingTableError) when a table
// the scheduler needs does not exist in the target database or schema.
var ErrMissingTable = errors.New("missing table")

// MissingTableError names a table that does not exist.
type MissingTableError struct {
	// Table is the missing table's name (the first one, when several are
	// missing).
	Table string
	// Hint says what the missing table means, in this package's terms
	// ("this is not a Wasso database: ..."). It never names a command or a
	// flag: the program that called adds how to create the tables.
	Hint string
}

func (e *MissingTableError) Error() string {
	msg := fmt.Sprintf("table %q does not exist", e.Table)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// Is makes errors.Is(err, ErrMissingTable) true.
func (e *MissingTableError) Is(target error) bool { return target == ErrMissingTable }

// ErrMigrationsPending is returned (wrapped in a *PendingMigrationsError)
// when migrations this build knows, River's or the scheduler's, are not
// applied to a database whose tables otherwise exist. Up applies them.
var ErrMigrationsPending = errors.New("migrations pending")

// PendingMigrationsError lists the migrations this build knows that the
// database lacks. Migrations the database has and this build does not
// know (applied by a newer River or a newer build of the scheduler) are
// never pending: see CheckScheduler.
type PendingMigrationsError struct {
	// River are the River migration versions (line main) not applied, in
	// order.
	River []int
	// Wasso are the scheduler's migrations not applied, in order.
	Wasso []Migration
}

func (e *PendingMigrationsError) Error() string {
	var parts []string
	if len(e.River) > 0 {
		versions := make([]string, len(e.River))
		for i, v := range e.River {
			versions[i] = strconv.Itoa(v)
		}
		parts = append(parts, "River "+strings.Join(versions, ", "))
	}
	if len(e.Wasso) > 0 {
		names := make([]string, len(e.Wasso))
		for i, m := range e.Wasso {
			names[i] = fmt.Sprintf("%03d_%s", m.Version, m.Name)
		}
		parts = append(parts, "scheduler "+strings.Join(names, ", "))
	}
	return "migrations not applied: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrMigrationsPending) true.
func (e *PendingMigrationsError) Is(target error) bool { return target == ErrMigrationsPending }

// Migration is one of the scheduler's own numbered migrations.
type Migration struct {
	// Version is the migration's number, from its file name.
	Version int
	// Name is the rest of the file name, without the direction and suffix.
	Name string
	// Up is the SQL applied when migrating up.
	Up string
	// Down is the SQL applied when migrating down.
	Down string
}

// Options configures Up, Down and Status.
type Options struct {
	// Logger receives one line per applied migration. Nil discards logs.
	Logger *slog.Logger

	// Schema is the Postgres schema that River's tables live in. Empty means
	// whatever search_path selects, which is what production uses. The
	// wasso_ tables and the Wasso tables are always found through
	// search_path, the way the Django backend finds them.
	Schema string

	// WithWassoSchema creates the Wasso tables (club_club, club_generation,
	// club_member, generation_mapping, events, attendances) when none of
	// them exist. Only for scratch databases: production already has them.
	WithWassoSchema bool
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// All returns the scheduler's own migrations in version order.
func All() []Migration {
	migrations, err := load(wassoFS)
	if err != nil {
		// The files are embedded at build time; a malformed name is a bug
		// that every test run would show.
		panic(err)
	}
	return migrations
}

func load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, "wasso")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, entry := range entries {
		name := entry.Name()
		var direction string
		switch {
		case strings.HasSuffix(name, ".up.sql"):
			direction = "up"
		case strings.HasSuffix(name, ".down.sql"):
			direction = "down"
		default:
			return nil, fmt.Errorf("migration file %q: name must end in .up.sql or .down.sql", name)
		}
		base := strings.TrimSuffix(name, "."+direction+".sql")
		number, label, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration file %q: name must be NNN_name", name)
		}
		version, err := strconv.Atoi(number)
		if err != nil {
			return nil, fmt.Errorf("migration file %q: version: %w", name, err)
		}
		body, err := fs.ReadFile(fsys, path.Join("wasso", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		m := byVersion[version]
		if m == nil {
			m = &Migration{Version: version, Name: label}
			byVersion[version] = m
		}
		if direction == "up" {
			m.Up = string(body)
		} else {
			m.Down = string(body)
		}
	}
	migrations := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %03d_%s: needs both an up and a down file", m.Version, m.Name)
		}
		migrations = append(migrations, *m)
	}
	sort.Slice(migrations, func(i, j int) bool { return migrations[i].Version < migrations[j].Version })
	return migrations, nil
}

// Result says what Up or Down changed.
type Result struct {
	// RiverVersions are the River migration versions applied (or rolled
	// back), in the order they ran.
	RiverVersions []int
	// WassoSchemaCreated is true when Up created the Wasso tables.
	WassoSchemaCreated bool
	// WassoVersions are the scheduler's migration versions applied (or
	// rolled back), in the order they ran.
	WassoVersions []int
}

// Up applies River's migrations and then the scheduler's own, and with
// Options.WithWassoSchema first creates the Wasso tables on a scratch
// database. The scheduler's migrations need the Wasso tables (one adds an
// index to events), so on a database without them Up returns a
// *MissingTableError naming the first one missing, having changed nothing.
func Up(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Result, error) {
	res := &Result{}
	logger := opts.logger()

	if opts.WithWassoSchema {
		created, err := ApplyWassoSchema(ctx, pool)
		if err != nil {
			return nil, err
		}
		res.WassoSchemaCreated = created
		if created {
			logger.InfoContext(ctx, "created wasso schema", slog.Int("tables", len(WassoTables)))
		}
	}
	if err := CheckWassoTables(ctx, pool); err != nil {
		return nil, err
	}

	migrator, err := riverMigrator(pool, opts)
	if err != nil {
		return nil, err
	}
	// River's migrator does not guard against a second migrator running at
	// once (several runners started together), and its migrations cannot
	// all share one transaction (one adds an enum value a later one uses),
	// so a transaction of its own, open for the whole migration, holds an
	// advisory lock that serialises them. A transaction-level lock, not a
	// session lock: behind a pooler in transaction mode (PgBouncer) a
	// session's statements may each run on another server connection, and
	// a session lock would outlive its unlock; a transaction keeps its
	// server connection until it ends, and the lock ends with it.
	lockTx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate river up: %w", err)
	}
	defer func() { _ = lockTx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := lockTx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey)); err != nil {
		return nil, fmt.Errorf("migrate river up: lock: %w", err)
	}
	riverRes, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	_ = lockTx.Rollback(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("migrate river up: %w", err)
	}
	for _, v := range riverRes.Versions {
		res.RiverVersions = append(res.RiverVersions, v.Version)
	}

	for _, m := range All() {
		applied, err := applyOne(ctx, pool, m, true)
		if err != nil {
			return nil, err
		}
		if applied {
			res.WassoVersions = append(res.WassoVersions, m.Version)
			logger.InfoContext(ctx, "applied wasso migration", slog.Int("version", m.Version), slog.String("name", m.Name))
		}
	}
	return res, nil
}

// DownOptions says how far Down goes.
type DownOptions struct {
	// River also rolls back River's tables, after the scheduler's own.
	// Every River job, queue and leader row is lost with them.
	River bool
	// TargetVersion is the scheduler migration version to roll back to
	// (exclusive). Zero rolls back every scheduler migration.
	TargetVersion int
}

// Down rolls back the scheduler's migrations newer than
// DownOptions.TargetVersion, newest first, each in its own transaction, and
// with DownOptions.River also removes River's tables. It never touches the
// Wasso tables' data; the one index the scheduler added to events is
// dropped with its migration.
func Down(ctx context.Context, pool *pgxpool.Pool, opts Options, down DownOptions) (*Result, error) {
	if down.TargetVersion < 0 {
		return nil, fmt.Errorf("migrate down: target version %d: must be zero or positive", down.TargetVersion)
	}
	all := All()
	if down.TargetVersion > 0 && down.TargetVersion > all[len(all)-1].Version {
		return nil, fmt.Errorf("migrate down: target version %d: no such migration (latest is %d)", down.TargetVersion, all[len(all)-1].Version)
	}
	res := &Result{}
	logger := opts.logger()
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.Version <= down.TargetVersion {
			break
		}
		applied, err := applyOne(ctx, pool, m, false)
		if err != nil {
			return nil, err
		}
		if applied {
			res.WassoVersions = append(res.WassoVersions, m.Version)
			logger.InfoContext(ctx, "rolled back wasso migration", slog.Int("version", m.Version), slog.String("name", m.Name))
		}
	}
	if down.River {
		migrator, err := riverMigrator(pool, opts)
		if err != nil {
			return nil, err
		}
		riverRes, err := migrator.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
		if err != nil {
			return nil, fmt.Errorf("migrate river down: %w", err)
		}
		for _, v := range riverRes.Versions {
			res.RiverVersions = append(res.RiverVersions, v.Version)
		}
	}
	return res, nil
}

// State is what Status reports.
type State struct {
	// RiverApplied are the River migration versions (line main) in the
	// database, newer ones this build does not know included.
	RiverApplied []int
	// RiverLatest is the newest River migration this build knows.
	RiverLatest int
	// RiverPending are the River migration versions this build knows that
	// the database lacks.
	RiverPending []int
	// RiverNewer are the River migration versions in the database that
	// this build does not know: a newer River migrated it.
	RiverNewer []int
	// WassoApplied maps applied scheduler migration versions to when they
	// were applied.
	WassoApplied map[int]time.Time
	// WassoPending are the scheduler migrations not applied yet.
	WassoPending []Migration
	// WassoNewer are the applied scheduler migration versions this build
	// does not know: a newer build of the scheduler migrated the database.
	WassoNewer []int
	// MissingWassoTables lists the Wasso tables that do not exist.
	MissingWassoTables []string
}

// UpToDate is true when every River and scheduler migration this build
// knows is applied and the Wasso tables exist. Migrations applied by a
// newer build do not make it false.
func (s *State) UpToDate() bool {
	return len(s.RiverPending) == 0 && len(s.WassoPending) == 0 && len(s.MissingWassoTables) == 0
}

// Status reports which migrations are applied, without changing anything.
func Status(ctx context.Context, pool *pgxpool.Pool, opts Options) (*State, error) {
	migrator, err := riverMigrator(pool, opts)
	if err != nil {
		return nil, err
	}
	state := &State{WassoApplied: map[int]time.Time{}}
	applied, err := riverVersions(ctx, pool, opts.Schema)
	if err != nil {
		return nil, err
	}
	state.RiverApplied = applied
	known := map[int]bool{}
	for _, m := range migrator.AllVersions() {
		known[m.Version] = true
		state.RiverLatest = max(state.RiverLatest, m.Version)
		if !slices.Contains(applied, m.Version) {
			state.RiverPending = append(state.RiverPending, m.Version)
		}
	}
	for _, v := range applied {
		if !known[v] {
			state.RiverNewer = append(state.RiverNewer, v)
		}
	}
	missing, err := missingTables(ctx, pool, WassoTables)
	if err != nil {
		return nil, err
	}
	state.MissingWassoTables = missing

	exists, err := tableExists(ctx, pool, versionTable)
	if err != nil {
		return nil, err
	}
	if exists {
		rows, err := pool.Query(ctx, `SELECT version, applied_at FROM `+versionTable)
		if err != nil {
			return nil, fmt.Errorf("read wasso migrations: %w", err)
		}
		var (
			version   int
			appliedAt time.Time
		)
		_, err = pgx.ForEachRow(rows, []any{&version, &appliedAt}, func() error {
			state.WassoApplied[version] = appliedAt
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read wasso migrations: %w", err)
		}
	}
	all := All()
	for _, m := range all {
		if _, ok := state.WassoApplied[m.Version]; !ok {
			state.WassoPending = append(state.WassoPending, m)
		}
	}
	for v := range state.WassoApplied {
		if !slices.ContainsFunc(all, func(m Migration) bool { return m.Version == v }) {
			state.WassoNewer = append(state.WassoNewer, v)
		}
	}
	slices.Sort(state.WassoNewer)
	return state, nil
}

// riverVersions reads the River migration versions of line main recorded
// in river_migration, in order; none when the table does not exist. It
// reads the table itself because rivermigrate's ExistingVersions fails on
// a version its bundle does not know, which is what a database migrated
// by a newer River holds. River's tables follow schema, not search_path.
func riverVersions(ctx context.Context, db Querier, schema string) ([]int, error) {
	table := pgx.Identifier{"river_migration"}
	if schema != "" {
		table = pgx.Identifier{schema, "river_migration"}
	}
	name := table.Sanitize()
	var hasTable, hasLine bool
	err := db.QueryRow(ctx, `
		SELECT to_regclass($1) IS NOT NULL,
		       EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'line' AND NOT attisdropped)`,
		name).Scan(&hasTable, &hasLine)
	if err != nil {
		return nil, fmt.Errorf("read river migrations: %w", err)
	}
	if !hasTable {
		return nil, nil
	}
	// Before River's migration 005 the table had no line column, and every
	// row was of line main.
	sql := `SELECT version FROM ` + name + ` ORDER BY version`
	if hasLine {
		sql = `SELECT version FROM ` + name + ` WHERE line = 'main' ORDER BY version`
	}
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("read river migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read river migrations: %w", err)
	}
	return versions, nil
}

const versionTable = "wasso_migration"

// migrationLockKey serialises concurrent migrators (several runners started
// at once) so that each migration is applied exactly once.
const migrationLockKey = 0x7761_7373_6f5f_6d69 // "wasso_mi"

// applyOne applies (or rolls back) one migration in its own transaction,
// together with the version row, and reports whether it did anything.
func applyOne(ctx context.Context, pool *pgxpool.Pool, m Migration, up bool) (bool, error) {
	var applied bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+versionTable+` (
			version integer NOT NULL PRIMARY KEY,
			name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create %s: %w", versionTable, err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+versionTable+` WHERE version = $1)`, m.Version).Scan(&exists); err != nil {
			return fmt.Errorf("read version: %w", err)
		}
		if exists == up {
			return nil
		}
		body := m.Down
		if up {
			body = m.Up
		}
		if _, err := tx.Exec(ctx, body); err != nil {
			return err
		}
		if up {
			_, err := tx.Exec(ctx, `INSERT INTO `+versionTable+` (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			if err != nil {
				return fmt.Errorf("record version: %w", err)
			}
		} else {
			if _, err := tx.Exec(ctx, `DELETE FROM `+versionTable+` WHERE version = $1`, m.Version); err != nil {
				return fmt.Errorf("delete version: %w", err)
			}
		}
		applied = true
		return nil
	})
	if err != nil {
		direction := "down"
		if up {
			direction = "up"
		}
		return false, fmt.Errorf("migrate wasso %s %03d_%s: %w", direction, m.Version, m.Name, err)
	}
	return applied, nil
}

func riverMigrator(pool *pgxpool.Pool, opts Options) (*rivermigrate.Migrator[pgx.Tx], error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		Logger: opts.logger(),
		Schema: opts.Schema,
	})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	return migrator, nil
}

// ApplyWassoSchema creates the Wasso tables, with the same columns,
// constraints and indexes the Django backend creates, in one transaction.
// It does nothing and returns false when they all exist already, and fails
// without changing anything when only some of them do, since that is not a
// database it should guess about.
func ApplyWassoSchema(ctx context.Context, db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}) (bool, error) {
	var created bool
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		missing, err := missingTables(ctx, tx, WassoTables)
		if err != nil {
			return err
		}
		switch len(missing) {
		case 0:
			return nil
		case len(WassoTables):
		default:
			return fmt.Errorf("only some Wasso tables exist (missing: %s); refusing to create the rest", strings.Join(missing, ", "))
		}
		if _, err := tx.Exec(ctx, wassoSchemaSQL); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("apply wasso schema: %w", err)
	}
	return created, nil
}

// CheckWassoTables returns a *MissingTableError naming the first Wasso table
// that search_path does not find.
func CheckWassoTables(ctx context.Context, db Querier) error {
	missing, err := missingTables(ctx, db, WassoTables)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &MissingTableError{Table: missing[0], Hint: notWassoHint(missing)}
	}
	return nil
}

// notWassoHint is the Hint of a *MissingTableError for missing Wasso
// tables. It says what is wrong and not what to run: that is for the
// program that called (wasso-runner adds its own advice).
func notWassoHint(missing []string) string {
	if len(missing) == 1 {
		return "this is not a Wasso database: the table " + missing[0] + " is missing"
	}
	return "this is not a Wasso database: the tables " + strings.Join(missing, ", ") + " are missing"
}

// CheckScheduler returns an error naming what is missing when the database
// lacks the Wasso tables (a *MissingTableError) or migrations this build
// knows, River's or the scheduler's (a *PendingMigrationsError), so that a
// runner refuses to start against a database it cannot work on.
//
// Migrations the database has and this build does not know are not an
// error: a newer River, or a newer build of the scheduler, migrated the
// database first (the backend deploys first, or a newer runner ran
// migrate up). Both write their migrations so that the previous release
// keeps working on the new schema, so this build runs; Check reports such
// versions in State.RiverNewer and State.WassoNewer for a warning.
func CheckScheduler(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	_, err := Check(ctx, pool, opts)
	return err
}

// Check is CheckScheduler, also returning the State it read (nil when the
// Wasso tables are missing or the state cannot be read).
func Check(ctx context.Context, pool *pgxpool.Pool, opts Options) (*State, error) {
	if err := CheckWassoTables(ctx, pool); err != nil {
		return nil, err
	}
	state, err := Status(ctx, pool, opts)
	if err != nil {
		return nil, err
	}
	if len(state.RiverPending) > 0 || len(state.WassoPending) > 0 {
		return state, &PendingMigrationsError{River: state.RiverPending, Wasso: state.WassoPending}
	}
	return state, nil
}

// Querier is what the checks need: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func missingTables(ctx context.Context, db Querier, tables []string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS x(t, n) WHERE to_regclass(quote_ident(t)) IS NULL ORDER BY n`, tables)
	if err != nil {
		return nil, fmt.Errorf("look up tables: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up tables: %w", err)
	}
	return missing, nil
}

func tableExists(ctx context.Context, db Querier, table string) (bool, error) {
	missing, err := missingTables(ctx, db, []string{table})
	if err != nil {
		return false, err
	}
	return len(missing) == 0, nil
}
