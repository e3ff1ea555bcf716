package runner_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
	"github.com/wasso/scheduler/migrations"
)

type migrateStatus struct {
	UpToDate bool `json:"up_to_date"`
	River    struct {
		Applied []int `json:"applied"`
		Latest  int   `json:"latest"`
	} `json:"river"`
	Wasso struct {
		Applied []struct {
			Version int `json:"version"`
		} `json:"applied"`
		Pending []struct {
			Version int `json:"version"`
		} `json:"pending"`
	} `json:"wasso"`
	MissingWassoTables []string `json:"missing_wasso_tables"`
}

func statusOf(t *testing.T, db *wassotest.DB) migrateStatus {
	t.Helper()
	res := runCLI(t, cliOpts{}, args([]string{"migrate", "status", "--json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	var st migrateStatus
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &st), res.stdout)
	return st
}

// TestMigrate: on an empty schema, status shows everything pending, up
// --with-wasso-schema creates the Wasso tables and applies River's and the
// scheduler's migrations, a second up changes nothing, down asks for
// confirmation and with --yes rolls back.
func TestMigrate(t *testing.T) {
	t.Parallel()
	db := wassotest.NewDB(t, wassotest.Options{Bare: true})
	latest := migrations.All()[len(migrations.All())-1].Version

	st := statusOf(t, db)
	require.False(t, st.UpToDate)
	require.Empty(t, st.River.Applied)
	require.Len(t, st.Wasso.Pending, len(migrations.All()))
	require.Equal(t, migrations.WassoTables, st.MissingWassoTables)

	res := runCLI(t, cliOpts{}, args([]string{"migrate", "status"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "not up to date: run wasso-runner migrate up")

	// Without the Wasso tables, up refuses and names the first one.
	res = runCLI(t, cliOpts{}, args([]string{"migrate", "up"}, dbArgs(db))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, oneLine(t, lastLine(res.stderr)), `"club_club" does not exist`)

	res = runCLI(t, cliOpts{}, args([]string{"migrate", "up", "--with-wasso-schema"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "created the Wasso tables")
	require.Contains(t, res.stdout, "river: applied 1, 2")
	require.Contains(t, res.stdout, "wasso: applied 1, 2")

	st = statusOf(t, db)
	require.True(t, st.UpToDate, "%+v", st)
	require.Equal(t, st.River.Latest, st.River.Applied[len(st.River.Applied)-1])
	require.Len(t, st.Wasso.Applied, len(migrations.All()))
	require.Empty(t, st.MissingWassoTables)

	// Idempotent.
	res = runCLI(t, cliOpts{}, args([]string{"migrate", "up", "--with-wasso-schema"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Equal(t, "river: nothing to do\nwasso: nothing to do\n", res.stdout)

	// Down needs a confirmation nobody can give without a terminal.
	res = runCLI(t, cliOpts{stdin: strings.NewReader("yes\n")}, args([]string{"migrate", "down"}, dbArgs(db))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, res.stderr, "pass --yes")
	require.True(t, statusOf(t, db).UpToDate)

	res = runCLI(t, cliOpts{}, args([]string{"migrate", "down", "--yes", "--target-version", "1"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	st = statusOf(t, db)
	require.Len(t, st.Wasso.Applied, 1)
	require.Len(t, st.Wasso.Pending, latest-1)

	res = runCLI(t, cliOpts{}, args([]string{"migrate", "down", "--yes", "--river"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	st = statusOf(t, db)
	require.Empty(t, st.River.Applied)
	require.Empty(t, st.Wasso.Applied)
	require.Empty(t, st.MissingWassoTables, "the Wasso tables are never dropped")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestSetup: setup is idempotent, checks the migrations and prints the
// periodic jobs a runner with this configuration enqueues.
func TestSetup(t *testing.T) {
	t.Parallel()
	db := wassotest.NewDB(t, wassotest.Options{})
	for range 2 {
		res := runCLI(t, cliOpts{}, args([]string{"setup"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stdout, "migrations: up to date")
		require.Contains(t, res.stdout, "attendance.sweep")
		require.Contains(t, res.stdout, "every 5m0s")
		require.Contains(t, res.stdout, "when a runner is elected leader")
		require.Contains(t, res.stdout, "deadline discovery: every 1s")
	}

	res := runCLI(t, cliOpts{env: []string{"WASSO_SWEEP_INTERVAL=90s"}}, args([]string{"setup", "--json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	var out struct {
		PeriodicJobs []struct {
			ID         string `json:"id"`
			Kind       string `json:"kind"`
			Schedule   string `json:"schedule"`
			RunOnStart bool   `json:"run_on_start"`
		} `json:"periodic_jobs"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
	require.Len(t, out.PeriodicJobs, 1)
	require.Equal(t, "attendance.sweep", out.PeriodicJobs[0].Kind)
	require.Equal(t, "every 1m30s", out.PeriodicJobs[0].Schedule)
	require.True(t, out.PeriodicJobs[0].RunOnStart)

	res = runCLI(t, cliOpts{}, args([]string{"setup", "--no-periodic", "--no-deadlines"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "periodic jobs: none")
	require.Contains(t, res.stdout, "deadline discovery: off")

	bare := wassotest.NewDB(t, wassotest.Options{Bare: true})
	res = runCLI(t, cliOpts{}, args([]string{"setup"}, dbArgs(bare))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, oneLine(t, res.stderr), "database not ready")
}

// TestVersion: version works without any configuration, even a broken one.
func TestVersion(t *testing.T) {
	t.Parallel()
	res := runCLI(t, cliOpts{env: []string{"WASSO_SWEEP_INTERVAL=broken"}}, "version")
	require.Equal(t, 0, res.code, res.String())
	require.True(t, strings.HasPrefix(res.stdout, "wasso-runner "), res.stdout)
	require.Contains(t, res.stdout, "river v0.")

	res = runCLI(t, cliOpts{}, "version", "--json")
	require.Equal(t, 0, res.code, res.String())
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
	require.NotEmpty(t, v["version"])
	require.NotEmpty(t, v["go"])
}
