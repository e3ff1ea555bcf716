package attendance_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
)

// TestSchemaMissingFrom: a missing table or function becomes a
// *SchemaMissingError naming it, which matches ErrSchemaMissing and still
// reaches the Postgres error; anything else, a missing operator included,
// is left alone.
func TestSchemaMissingFrom(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name       string
		err        error
		kind, want string
		msg        string
	}{
		{name: "Table", err: &pgconn.PgError{Code: pgerrcode.UndefinedTable, Message: `relation "events" does not exist`},
			kind: "relation", want: "events", msg: `scheduler schema missing: relation "events" does not exist`},
		{name: "QualifiedTable", err: fmt.Errorf("query: %w", &pgconn.PgError{Code: pgerrcode.UndefinedTable, Message: `relation "wasso.wasso_schedule" does not exist`}),
			kind: "relation", want: "wasso.wasso_schedule", msg: `scheduler schema missing: relation "wasso.wasso_schedule" does not exist`},
		{name: "Function", err: &pgconn.PgError{Code: pgerrcode.UndefinedFunction, Message: `function wasso_deadline(timestamp with time zone, integer) does not exist`},
			kind: "function", want: "wasso_deadline", msg: `scheduler schema missing: function wasso_deadline(timestamp with time zone, integer) does not exist`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			missing, ok := attendance.SchemaMissingFrom(tt.err)
			require.True(t, ok)
			require.Equal(t, tt.kind, missing.Kind)
			require.Equal(t, tt.want, missing.Name)
			require.EqualError(t, missing, tt.msg)

			err := fmt.Errorf("settle events [1]: %w", missing)
			require.ErrorIs(t, err, attendance.ErrSchemaMissing)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
		})
	}

	for _, err := range []error{
		errors.New("connection refused"),
		&pgconn.PgError{Code: pgerrcode.UndefinedFunction, Message: "operator does not exist: integer = text"},
		&pgconn.PgError{Code: pgerrcode.UniqueViolation, Message: "duplicate key value violates unique constraint"},
	} {
		_, ok := attendance.SchemaMissingFrom(err)
		require.False(t, ok, "%v", err)
	}

	// Built by hand, without a database error, it still reads well.
	require.EqualError(t, &attendance.SchemaMissingError{Kind: "relation", Name: "events"},
		`scheduler schema missing: relation "events" does not exist`)
}
