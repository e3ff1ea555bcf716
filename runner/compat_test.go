package runner_test

import (
	"context"
	"encoding/json"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/migrations"
)

func riverMigrator(t *testing.T, db *wassotest.DB) *rivermigrate.Migrator[pgx.Tx] {
	t.Helper()
	m, err := rivermigrate.New(riverpgxv5.New(db.Pool), &rivermigrate.Config{Schema: db.Schema})
	require.NoError(t, err)
	return m
}

// TestRunOnNewerMigrations: a database a newer River migrated first (the
// backend upgraded before the runners: river_migration holds a version
// this build does not know), and that a newer build of the scheduler
// migrated too, does not stop the runner: it starts with a warning naming
// the newer versions, and settles. migrate status calls it up to date and
// lists them; migrate up changes nothing.
func TestRunOnNewerMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	all := riverMigrator(t, db).AllVersions()
	newerRiver := all[len(all)-1].Version + 1
	newerWasso := migrations.All()[len(migrations.All())-1].Version + 1
	_, err := db.Pool.Exec(ctx, `INSERT INTO river_migration (line, version) VALUES ('main', $1)`, newerRiver)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO wasso_migration (version, name) VALUES ($1, 'from_a_newer_build')`, newerWasso)
	require.NoError(t, err)
	_, eventID := dueClub(t, db, 2)

	res := runCLI(t, cliOpts{}, args([]string{"migrate", "status", "--json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	var st struct {
		UpToDate bool `json:"up_to_date"`
		River    struct {
			Pending []int `json:"pending"`
			Newer   []int `json:"newer"`
		} `json:"river"`
		Wasso struct {
			Newer []int `json:"newer"`
		} `json:"wasso"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &st), res.stdout)
	require.True(t, st.UpToDate, res.stdout)
	require.Empty(t, st.River.Pending)
	require.Equal(t, []int{newerRiver}, st.River.Newer)
	require.Equal(t, []int{newerWasso}, st.Wasso.Newer)
	res = runCLI(t, cliOpts{}, args([]string{"migrate", "status"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "newer than this build")
	require.NotContains(t, res.stdout, "not up to date")

	res = runCLI(t, cliOpts{}, args([]string{"migrate", "up"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Equal(t, "river: nothing to do\nwasso: nothing to do\n", res.stdout)

	p := startRunner(t, db, cliOpts{})
	warn := p.waitLog(t, "the database has migrations newer than this build; running anyway, as every migration this build needs is applied", time.Second)
	require.Equal(t, "WARN", warn["level"])
	require.Equal(t, []any{float64(newerRiver)}, warn["river_newer"])
	require.Equal(t, []any{float64(newerWasso)}, warn["wasso_newer"])
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, eventID) == 2
	}, time.Minute, 100*time.Millisecond)
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
}

// TestRunRefusesPendingMigrations: a database that lacks a River
// migration this build knows (the last one, rolled back) is refused by
// run (exit 2, nothing started) and sweep (exit 1, nothing settled) with
// the missing version and the command that applies it; migrate up
// applies it and run then starts.
func TestRunRefusesPendingMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	migrator := riverMigrator(t, db)
	all := migrator.AllVersions()
	latest := all[len(all)-1].Version
	_, err := migrator.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: latest - 1})
	require.NoError(t, err)
	_, eventID := dueClub(t, db, 2)
	want := "wasso-runner: database not ready: migrations not applied: River " + strconv.Itoa(latest) + " (run wasso-runner migrate up)"

	res := runCLI(t, cliOpts{}, args([]string{"run", "--no-http"}, dbArgs(db))...)
	require.Equal(t, 2, res.code, res.String())
	require.Equal(t, want, oneLine(t, res.stderr))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_leader`), "no client was started")

	res = runCLI(t, cliOpts{}, args([]string{"sweep"}, dbArgs(db))...)
	require.Equal(t, 1, res.code, res.String())
	require.Equal(t, want, oneLine(t, res.stderr))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, eventID), "nothing settled")

	res = runCLI(t, cliOpts{}, args([]string{"migrate", "up"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "river: applied "+strconv.Itoa(latest)+"\n")

	p := startRunner(t, db, cliOpts{})
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, eventID) == 2
	}, time.Minute, 100*time.Millisecond)
	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
}
