package runner

import (
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/migrations"
)

// Advice hint appends to an error. The libraries (attendance, migrations,
// wassoriver) say what is missing with typed errors and leave what to run
// to the program: these are wasso-runner's words for it.
const (
	hintReadOnly        = "database_url reaches a read-only server (a standby): point it at the primary, or list every host with target_session_attrs=read-write so that the primary is chosen"
	hintMigrate         = "run wasso-runner migrate up"
	hintStatementPooler = "database_url goes through a connection pooler in statement pooling mode, which refuses transactions, and River and the settlements need them: " +
		"use pool_mode = transaction (with database.listen_url for notifications) or session"
	hintNotWasso = "point database_url at the Django backend's database; on a scratch database run wasso-runner migrate up --with-wasso-schema"
)

// hint returns the advice Main appends to a failing command's error, or ""
// when it has none: how to create a missing table or apply pending
// migrations, in the CLI's terms. A missing Wasso table (the Django
// backend's) means the wrong database or a scratch one; any other missing
// table or function means the scheduler's migrations are not applied.
func hint(err error) string {
	var (
		missingTable  *migrations.MissingTableError
		schemaMissing *attendance.SchemaMissingError
		pgErr         *pgconn.PgError
		advice        string
	)
	switch {
	case errors.As(err, &missingTable):
		advice = hintNotWasso
	case errors.As(err, &schemaMissing):
		advice = hintMigrate
		if schemaMissing.Kind == "relation" && slices.Contains(migrations.WassoTables, unqualified(schemaMissing.Name)) {
			advice = hintNotWasso
		}
	case errors.Is(err, migrations.ErrMigrationsPending):
		advice = hintMigrate
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ReadOnlySQLTransaction:
		advice = hintReadOnly
	case err != nil && strings.Contains(err.Error(), "statement pooling mode"):
		// PgBouncer's refusal of BEGIN (SQLSTATE 08P01, protocol
		// violation, which says nothing by itself).
		advice = hintStatementPooler
	}
	return advice
}

// unqualified returns a relation's name without its schema: "events" for
// "public.events".
func unqualified(name string) string {
	return name[strings.LastIndexByte(name, '.')+1:]
}
