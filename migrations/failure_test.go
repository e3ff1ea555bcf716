package migrations_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/migrations"
)

// TestFailedMigrationLeavesDatabaseAsItWas applies a migration whose second
// statement fails: its first statement and its version row are rolled back
// with it.
func TestFailedMigrationLeavesDatabaseAsItWas(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	broken := migrations.Migration{
		Version: 900,
		Name:    "broken",
		Up:      `CREATE TABLE wasso_half (id int); SELECT * FROM no_such_table;`,
		Down:    `DROP TABLE wasso_half;`,
	}
	applied, err := migrations.ApplyOne(ctx, db.Pool, broken, true)
	require.False(t, applied)
	require.ErrorContains(t, err, `migrate wasso up 900_broken: ERROR: relation "no_such_table" does not exist`)
	var table *string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT to_regclass('wasso_half')::text`).Scan(&table))
	require.Nil(t, table)
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM wasso_migration WHERE version = 900`).Scan(&n))
	require.Zero(t, n)
}

func TestLoad(t *testing.T) {
	t.Parallel()

	_, err := migrations.Load(fstest.MapFS{"wasso/001_a.up.sql": {Data: []byte("SELECT 1")}})
	require.ErrorContains(t, err, "migration 001_a: needs both an up and a down file")
	_, err = migrations.Load(fstest.MapFS{"wasso/x_a.up.sql": {}})
	require.ErrorContains(t, err, `migration file "x_a.up.sql": version`)
	_, err = migrations.Load(fstest.MapFS{"wasso/001_a.sql": {}})
	require.ErrorContains(t, err, "must end in .up.sql or .down.sql")
	all := migrations.All()
	require.Equal(t, 1, all[0].Version)
	require.Equal(t, "settlement", all[0].Name)
}
