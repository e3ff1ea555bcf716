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
	db := newDB(t, wassotest.Options{Bare: true})
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
	require.Contains(t, oneLine(t, lastLine(res.stderr)), `"club_club" does not exist: this is not a Wasso database`)
	require.Contains(t, oneLine(t, lastLine(res.stderr)), "on a scratch database run wasso-runner migrate up --with-wasso-schema")

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

// TestSetup: setup is idempotent, checks the migrations, seeds the
// attendance-sweep schedule once (from sweep.interval) and prints the
// stored schedules. Seeding is once: a later sweep.interval does not
// change the stored schedule, and --no-periodic seeds nothing.
func TestSetup(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	for i := range 2 {
		res := runCLI(t, cliOpts{}, args([]string{"setup"}, dbArgs(db))...)
		require.Equal(t, 0, res.code, res.String())
		require.Contains(t, res.stdout, "migrations: up to date")
		require.Contains(t, res.stdout, "attendance-sweep")
		require.Contains(t, res.stdout, "attendance.sweep")
		require.Contains(t, res.stdout, "every 5m0s")
		require.Contains(t, res.stdout, "leader: none")
		require.Contains(t, res.stdout, "deadline discovery: every 1s")
		if i == 0 {
			require.Contains(t, res.stdout, "default schedules created: attendance-sweep (every 5m0s)")
		} else {
			require.Contains(t, res.stdout, "default schedules left as the operator set them: attendance-sweep (every 5m0s; seeded ")
		}
	}

	res := runCLI(t, cliOpts{env: []string{"WASSO_SWEEP_INTERVAL=90s"}}, args([]string{"setup", "--json"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	var out struct {
		Seeded []struct {
			Name    string `json:"name"`
			Outcome string `json:"outcome"`
			Exists  bool   `json:"exists"`
		} `json:"seeded"`
		Schedules []struct {
			Name    string `json:"name"`
			Kind    string `json:"kind"`
			Every   string `json:"every"`
			Enabled bool   `json:"enabled"`
			NextRun string `json:"next_run_at"`
		} `json:"schedules"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
	require.Len(t, out.Seeded, 1)
	require.Equal(t, "kept", out.Seeded[0].Outcome)
	require.True(t, out.Seeded[0].Exists)
	require.Len(t, out.Schedules, 1)
	require.Equal(t, "attendance.sweep", out.Schedules[0].Kind)
	require.Equal(t, "5m0s", out.Schedules[0].Every, "seeded once: a later sweep.interval does not change it")
	require.True(t, out.Schedules[0].Enabled)
	require.NotEmpty(t, out.Schedules[0].NextRun)

	res = runCLI(t, cliOpts{}, args([]string{"setup", "--no-periodic", "--no-deadlines"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "default schedules: not seeded (run.periodic is false")
	require.Contains(t, res.stdout, "deadline discovery: off")
	fresh := newDB(t, wassotest.Options{})
	res = runCLI(t, cliOpts{}, args([]string{"setup", "--no-periodic"}, dbArgs(fresh))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "(no schedules")
	require.Zero(t, count(t, fresh.Pool, `SELECT count(*) FROM wasso_schedule`))

	bare := newDB(t, wassotest.Options{Bare: true})
	res = runCLI(t, cliOpts{}, args([]string{"setup"}, dbArgs(bare))...)
	require.Equal(t, 1, res.code, res.String())
	require.Contains(t, oneLine(t, res.stderr), "database not ready")
	require.Contains(t, oneLine(t, res.stderr), "--with-wasso-schema")
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
