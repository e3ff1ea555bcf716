package runner

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/migrations"
)

// TestHint: the libraries' typed errors get wasso-runner's advice, a
// missing Wasso table (the Django backend's) the scratch-database one.
func TestHint(t *testing.T) {
	t.Parallel()

	pending := &migrations.PendingMigrationsError{River: []int{6}}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"MissingWassoTable", fmt.Errorf("migrate up: %w", &migrations.MissingTableError{Table: "club_club"}), hintNotWasso},
		{"SchemaMissingWassoTable", fmt.Errorf("settle: %w", &attendance.SchemaMissingError{Kind: "relation", Name: "events"}), hintNotWasso},
		{"SchemaMissingQualifiedWassoTable", &attendance.SchemaMissingError{Kind: "relation", Name: "public.attendances"}, hintNotWasso},
		{"SchemaMissingSchedulerTable", fmt.Errorf("list schedules: %w", &attendance.SchemaMissingError{Kind: "relation", Name: "wasso_schedule"}), hintMigrate},
		{"SchemaMissingFunction", &attendance.SchemaMissingError{Kind: "function", Name: "wasso_deadline"}, hintMigrate},
		{"Pending", notReady(pending), hintMigrate},
		{"StatementPooler", fmt.Errorf("seed the default schedules: %w", &pgconn.PgError{Severity: "FATAL", Code: "08P01", Message: "transaction blocks not allowed in statement pooling mode"}), hintStatementPooler},
		{"Other", errors.New("boom"), ""},
		{"Nil", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, hint(tt.err))
		})
	}
}
