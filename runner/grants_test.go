package runner_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/pgtemp"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// grantsScript is the least-privilege script users apply; the test runs
// this very file, so that what is documented is what is tested.
var grantsScript = filepath.Join("..", "examples", "deploy", "grants.sql")

// findPsql returns psql, which applies grantsScript as users do (it uses
// psql variables and meta-commands): from $PATH, else next to the server
// binaries the private test cluster would use.
func findPsql(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("psql"); err == nil {
		return path
	}
	if dir, err := pgtemp.FindBinaries(); err == nil {
		path := filepath.Join(dir, "psql")
		if _, err := exec.LookPath(path); err == nil {
			return path
		}
	}
	t.Fatal("psql not found in $PATH nor next to the Postgres server binaries: install the Postgres client (apt-get install postgresql-client)")
	return ""
}

// TestLeastPrivilegeRole runs the runner as a role that holds nothing but
// the grants of examples/deploy/grants.sql, on a schema the owner
// migrated: the sweep command and a running runner settle due events
// (by the sweep and at an exact deadline), deliver the notices, elect a
// leader, serve River UI and delete a job, without a single permission
// error; and the role cannot change the schema, the Django tables other
// than attendances' settlement columns, or the migration records.
func TestLeastPrivilegeRole(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	psql := findPsql(t)
	admin := wassotest.AdminPool(t)

	// The owner migrates, as in production: `migrate up` by the role that
	// owns the tables.
	db := newDB(t, wassotest.Options{Bare: true})
	res := runCLI(t, cliOpts{}, args([]string{"migrate", "up", "--with-wasso-schema"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())

	// Roles belong to the cluster, not to the test's schema: a name of
	// the test's own, and dropped whatever happens (after the processes
	// using it are stopped and before the schema is dropped, cleanups
	// running last registered first).
	role := "wasso_runner_" + randomSuffix(t)
	password := "pw-" + randomSuffix(t)
	roleIdent := pgx.Identifier{role}.Sanitize()
	_, err := admin.Exec(ctx, `CREATE ROLE `+roleIdent+` LOGIN PASSWORD '`+password+`'`)
	require.NoError(t, err)
	t.Cleanup(func() {
		// DROP OWNED revokes the role's privileges (in this database and
		// on the database itself); DROP ROLE then succeeds.
		_, err := admin.Exec(context.Background(), `DROP OWNED BY `+roleIdent)
		require.NoError(t, err)
		_, err = admin.Exec(context.Background(), `DROP ROLE `+roleIdent)
		require.NoError(t, err)
	})

	apply := exec.CommandContext(ctx, psql, "--no-psqlrc", "--quiet", "-d", wassotest.ServerURL(t),
		"-v", "role="+role, "-v", "schema="+db.Schema, "-f", grantsScript)
	apply.Env = baseEnv()
	out, err := apply.CombinedOutput()
	require.NoError(t, err, "psql -f %s:\n%s", grantsScript, out)

	u, err := url.Parse(wassotest.ServerURL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(role, password)
	runnerDB := &wassotest.DB{Schema: db.Schema, URL: wassotest.WithSearchPath(u.String(), db.Schema)}
	rolePool, err := pgxpool.New(ctx, runnerDB.URL)
	require.NoError(t, err)
	t.Cleanup(rolePool.Close)
	runnerDB.Pool = rolePool
	var who string
	require.NoError(t, rolePool.QueryRow(ctx, `SELECT current_user`).Scan(&who))
	require.Equal(t, role, who)

	// The sweep command, as the role, settles a due event and enqueues
	// its notice.
	club, due := dueClub(t, db, 3)
	res = runCLI(t, cliOpts{}, args([]string{"sweep"}, dbArgs(runnerDB))...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "settled 1 events: 0 rows to ABSENT, 3 ABSENT rows created")

	// An event whose deadline is a few seconds ahead, for the leader's
	// discovery and the exact-deadline job.
	var now time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now))
	exact, err := seed.CreateEvent(ctx, db.Pool, seed.Event{
		GenerationID: club.GenerationID,
		Title:        "Exact deadline",
		Start:        now.Add(8*time.Second - 30*time.Minute),
		StartMinutes: -10,
		LateMinutes:  10,
		FailMinutes:  30,
	}, now.Add(-time.Hour))
	require.NoError(t, err)
	noop, err := controlClient(t, db).Insert(ctx, noopArgs{N: 1}, nil)
	require.NoError(t, err)

	p := startRunner(t, runnerDB, cliOpts{env: []string{"WASSO_LOG_LEVEL=debug"}}, "--sweep-interval", "1s")
	settled := func(event int64) bool {
		return countNoFail(db, `SELECT count(*) FROM wasso_settlement WHERE event_id = $1`, event) == 1 &&
			countNoFail(db, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, event) == 3
	}
	jobs := func(kind, state string) int {
		return countNoFail(db, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = $2`, kind, state)
	}
	require.Eventually(t, func() bool {
		return settled(due) && settled(exact) &&
			jobs(attendance.SettleEventKind, "completed") >= 1 &&
			jobs(attendance.NotifyAbsentKind, "completed") == 2 &&
			jobs(attendance.SweepKind, "completed") >= 2
	}, 2*time.Minute, 100*time.Millisecond, "settled, notified and swept as the role")

	base := p.baseURL(t)
	for _, path := range []string{"/readyz", "/riverui/api/jobs?state=completed&limit=20", "/riverui/api/queues", "/riverui/api/states"} {
		status, body := doHTTP(t, http.MethodGet, base+path, nil, "", "")
		require.Equal(t, http.StatusOK, status, "GET %s: %s", path, body)
	}
	res = runCLI(t, cliOpts{}, args([]string{"jobs", "delete", strconv.FormatInt(noop.Job.ID, 10)}, dbArgs(runnerDB))...)
	require.Equal(t, 0, res.code, res.String())
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE id = $1`, noop.Job.ID))
	res = runCLI(t, cliOpts{}, args([]string{"inspect", "stats"}, dbArgs(runnerDB))...)
	require.Equal(t, 0, res.code, res.String())

	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
	logs := p.stderr.String()
	require.Contains(t, logs, "Gained leadership", "this runner was the leader")
	for _, denied := range []string{"permission denied", "must be owner", pgerrcode.InsufficientPrivilege} {
		require.NotContains(t, logs, denied)
	}
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE errors IS NOT NULL`), "no job failed")

	// What the role cannot do.
	for _, sql := range []string{
		`ALTER TABLE attendances ADD COLUMN x integer`,
		`DROP TABLE river_job`,
		`TRUNCATE attendances`,
		`CREATE TABLE ` + pgx.Identifier{db.Schema, "x"}.Sanitize() + ` (id integer)`,
		`CREATE INDEX ON events (title)`,
		`DELETE FROM events`,
		`UPDATE events SET title = title`,
		`DELETE FROM club_member`,
		`INSERT INTO club_club (name, created_at, updated_at) VALUES ('x', now(), now())`,
		`UPDATE attendances SET event_id = event_id`,
		`UPDATE attendances SET created_by_id = NULL`,
		`DELETE FROM river_migration`,
		`UPDATE wasso_migration SET name = name`,
		`INSERT INTO river_notification (payload, topic) VALUES ('x', 'x')`,
	} {
		_, err := rolePool.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%s: want a permission error, got %v", sql, err)
		require.Equal(t, pgerrcode.InsufficientPrivilege, pgErr.Code, "%s: %s", sql, pgErr.Message)
	}
	// Nor migrate, up or down: the scheduler's migrations are DDL in a
	// schema it has no CREATE on, on tables it does not own.
	versions := `SELECT (SELECT count(*) FROM river_migration) + (SELECT count(*) FROM wasso_migration)`
	applied := count(t, db.Pool, versions)
	for _, migrate := range [][]string{{"migrate", "up"}, {"migrate", "down", "--yes"}} {
		res = runCLI(t, cliOpts{}, args(migrate, dbArgs(runnerDB))...)
		require.Equal(t, 1, res.code, res.String())
		require.Regexp(t, `(?m)^wasso-runner: .*(permission denied|must be owner)`, res.stderr)
	}
	require.Equal(t, applied, count(t, db.Pool, versions), "every migration is still applied")
}
