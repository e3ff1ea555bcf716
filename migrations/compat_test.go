package migrations_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/migrations"
)

// latestRiver is the newest River migration this build knows.
func latestRiver(t *testing.T, db *wassotest.DB) int {
	t.Helper()
	state, err := migrations.Status(context.Background(), db.Pool, migrations.Options{Schema: db.Schema})
	require.NoError(t, err)
	return state.RiverLatest
}

// TestNewerMigrationsAreNotAnError: a database migrated by a newer River
// (river_migration holds a version this build does not know) or by a
// newer build of the scheduler (wasso_migration too) is ready for this
// build: CheckScheduler accepts it, Status reports the newer versions, Up
// changes nothing.
func TestNewerMigrationsAreNotAnError(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	opts := migrations.Options{Schema: db.Schema}
	newerRiver := latestRiver(t, db) + 1
	newerWasso := migrations.All()[len(migrations.All())-1].Version + 1
	_, err := db.Pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{db.Schema, "river_migration"}.Sanitize()+` (line, version) VALUES ('main', $1)`, newerRiver)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO wasso_migration (version, name) VALUES ($1, 'from_a_newer_build')`, newerWasso)
	require.NoError(t, err)

	// rivermigrate itself cannot list the versions of such a database,
	// which is why Status reads river_migration directly.
	migrator, err := rivermigrate.New(riverpgxv5.New(db.Pool), &rivermigrate.Config{Schema: db.Schema})
	require.NoError(t, err)
	_, err = migrator.ExistingVersions(ctx)
	require.ErrorContains(t, err, "not found in migrator bundle")

	require.NoError(t, migrations.CheckScheduler(ctx, db.Pool, opts))
	state, err := migrations.Check(ctx, db.Pool, opts)
	require.NoError(t, err)
	require.True(t, state.UpToDate())
	require.Equal(t, []int{newerRiver}, state.RiverNewer)
	require.Equal(t, []int{newerWasso}, state.WassoNewer)
	require.Empty(t, state.RiverPending)
	require.Empty(t, state.WassoPending)
	require.Equal(t, newerRiver, state.RiverApplied[len(state.RiverApplied)-1])

	res, err := migrations.Up(ctx, db.Pool, opts)
	require.NoError(t, err)
	require.Equal(t, &migrations.Result{}, res, "nothing to apply, and the newer versions are left alone")
	state, err = migrations.Status(ctx, db.Pool, opts)
	require.NoError(t, err)
	require.Equal(t, []int{newerRiver}, state.RiverNewer)
}

// TestMissingRiverMigrationIsPending: a database that lacks a River
// migration this build knows (here the last one, rolled back) is refused
// with a *PendingMigrationsError naming it, which is not the missing-table
// error, and Up applies it.
func TestMissingRiverMigrationIsPending(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	opts := migrations.Options{Schema: db.Schema}
	latest := latestRiver(t, db)
	migrator, err := rivermigrate.New(riverpgxv5.New(db.Pool), &rivermigrate.Config{Schema: db.Schema})
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: latest - 1})
	require.NoError(t, err)
	// And a newer version next to the gap: newer versions do not hide
	// missing ones.
	_, err = db.Pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{db.Schema, "river_migration"}.Sanitize()+` (line, version) VALUES ('main', $1)`, latest+1)
	require.NoError(t, err)

	err = migrations.CheckScheduler(ctx, db.Pool, opts)
	require.ErrorIs(t, err, migrations.ErrMigrationsPending)
	require.NotErrorIs(t, err, migrations.ErrMissingTable)
	var pending *migrations.PendingMigrationsError
	require.ErrorAs(t, err, &pending)
	require.Equal(t, []int{latest}, pending.River)
	require.Empty(t, pending.Wasso)
	require.EqualError(t, err, "migrations not applied: River "+strconv.Itoa(latest))

	res, err := migrations.Up(ctx, db.Pool, opts)
	require.NoError(t, err)
	require.Equal(t, []int{latest}, res.RiverVersions)
	require.NoError(t, migrations.CheckScheduler(ctx, db.Pool, opts))
}

// TestMissingWassoMigrationIsPending: the same for the scheduler's own
// migrations.
func TestMissingWassoMigrationIsPending(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	opts := migrations.Options{Schema: db.Schema}
	all := migrations.All()
	last := all[len(all)-1]
	_, err := migrations.Down(ctx, db.Pool, opts, migrations.DownOptions{TargetVersion: last.Version - 1})
	require.NoError(t, err)

	err = migrations.CheckScheduler(ctx, db.Pool, opts)
	var pending *migrations.PendingMigrationsError
	require.ErrorAs(t, err, &pending)
	require.Empty(t, pending.River)
	require.Equal(t, []migrations.Migration{last}, pending.Wasso)
	require.ErrorContains(t, err, fmt.Sprintf("migrations not applied: scheduler %03d_%s", last.Version, last.Name))
}
