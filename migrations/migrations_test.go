package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/migrations"
)

func TestMain(m *testing.M) { wassotest.Main(m) }

func TestUp(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("TwiceIsANoOp", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		opts := migrations.Options{Schema: db.Schema, WithWassoSchema: true}
		res, err := migrations.Up(ctx, db.Pool, opts)
		require.NoError(t, err)
		require.True(t, res.WassoSchemaCreated)
		require.NotEmpty(t, res.RiverVersions)
		require.Len(t, res.WassoVersions, len(migrations.All()))

		res, err = migrations.Up(ctx, db.Pool, opts)
		require.NoError(t, err)
		require.Equal(t, &migrations.Result{}, res)

		state, err := migrations.Status(ctx, db.Pool, opts)
		require.NoError(t, err)
		require.True(t, state.UpToDate())
		require.NoError(t, migrations.CheckScheduler(ctx, db.Pool, opts))
	})

	t.Run("WithoutWassoTablesNamesTheMissingTable", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		_, err := migrations.Up(ctx, db.Pool, migrations.Options{Schema: db.Schema})
		require.ErrorIs(t, err, migrations.ErrMissingTable)
		var missing *migrations.MissingTableError
		require.ErrorAs(t, err, &missing)
		require.Equal(t, "club_club", missing.Table)
		require.Equal(t, "this is not a Wasso database: the tables club_club, club_generation, club_member, generation_mapping, events, attendances are missing", missing.Hint)
		require.ErrorContains(t, err, `table "club_club" does not exist: this is not a Wasso database`)
		require.NotContains(t, err.Error(), "--with-wasso-schema", "the library names no command or flag")
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, db.Schema).Scan(&n))
		require.Zero(t, n, "nothing created")

		err = migrations.CheckScheduler(ctx, db.Pool, migrations.Options{Schema: db.Schema})
		require.ErrorIs(t, err, migrations.ErrMissingTable)
	})

	t.Run("PartialWassoSchemaIsRefused", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		_, err := db.Pool.Exec(ctx, `CREATE TABLE events (id bigint)`)
		require.NoError(t, err)
		_, err = migrations.Up(ctx, db.Pool, migrations.Options{Schema: db.Schema, WithWassoSchema: true})
		require.ErrorContains(t, err, "only some Wasso tables exist (missing: club_club, club_generation, club_member, generation_mapping, attendances)")
	})

	t.Run("CheckSchedulerNamesPendingMigrations", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		_, err := migrations.ApplyWassoSchema(ctx, db.Pool)
		require.NoError(t, err)
		err = migrations.CheckScheduler(ctx, db.Pool, migrations.Options{Schema: db.Schema})
		require.ErrorIs(t, err, migrations.ErrMigrationsPending)
		require.NotErrorIs(t, err, migrations.ErrMissingTable)
		var pending *migrations.PendingMigrationsError
		require.ErrorAs(t, err, &pending)
		require.Equal(t, 1, pending.River[0], "no River migration is applied")
		require.Len(t, pending.Wasso, len(migrations.All()))
		require.ErrorContains(t, err, "migrations not applied: River 1, 2, ")
		require.ErrorContains(t, err, "; scheduler 001_settlement, ")
	})

	t.Run("ConcurrentMigratorsApplyOnce", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{Bare: true})
		_, err := migrations.ApplyWassoSchema(ctx, db.Pool)
		require.NoError(t, err)
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				_, err := migrations.Up(ctx, db.Pool, migrations.Options{Schema: db.Schema})
				errs <- err
			}()
		}
		for range 4 {
			require.NoError(t, <-errs)
		}
		state, err := migrations.Status(ctx, db.Pool, migrations.Options{Schema: db.Schema})
		require.NoError(t, err)
		require.True(t, state.UpToDate())
	})
}

func TestDown(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	opts := migrations.Options{Schema: db.Schema}

	res, err := migrations.Down(ctx, db.Pool, opts, migrations.DownOptions{TargetVersion: 1})
	require.NoError(t, err)
	// Every migration above 1, newest first, however many there are.
	var above1 []int
	for _, m := range migrations.All() {
		if m.Version > 1 {
			above1 = append([]int{m.Version}, above1...)
		}
	}
	require.Equal(t, above1, res.WassoVersions)
	var plan *string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT to_regclass('wasso_deadline_plan')::text`).Scan(&plan))
	require.Nil(t, plan)
	var idx *string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT to_regclass('wasso_events_deadline_idx')::text`).Scan(&idx))
	require.Nil(t, idx)

	res, err = migrations.Down(ctx, db.Pool, opts, migrations.DownOptions{River: true})
	require.NoError(t, err)
	require.Equal(t, []int{1}, res.WassoVersions)
	require.NotEmpty(t, res.RiverVersions)
	state, err := migrations.Status(ctx, db.Pool, opts)
	require.NoError(t, err)
	require.Empty(t, state.RiverApplied)
	require.Len(t, state.WassoPending, len(migrations.All()))
	require.Empty(t, state.MissingWassoTables, "the Wasso tables are never dropped")

	_, err = migrations.Up(ctx, db.Pool, opts)
	require.NoError(t, err)

	_, err = migrations.Down(ctx, db.Pool, opts, migrations.DownOptions{TargetVersion: 99})
	require.ErrorContains(t, err, "target version 99: no such migration")
	_, err = migrations.Down(ctx, db.Pool, opts, migrations.DownOptions{TargetVersion: -1})
	require.ErrorContains(t, err, "target version -1: must be zero or positive")
}
