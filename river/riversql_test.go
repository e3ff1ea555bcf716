package wassoriver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// riverSQLModules are the modules whose code riversql.go's statements
// depend on: River's client (its job scheduler, its insert notification)
// and its Postgres driver (the fetch query, the migrations that create
// river_job).
var riverSQLModules = []string{
	"github.com/riverqueue/river",
	"github.com/riverqueue/river/riverdriver/riverpgxv5",
}

// TestRiverSQLWrittenFor fails once go.mod requires, or replaces, a River
// release other than the one riversql.go was written against. Test
// binaries carry no dependency list in their build info, so the versions
// are read from go.mod, which names every module the build uses.
func TestRiverSQLWrittenFor(t *testing.T) {
	t.Parallel()

	required, replaced := goModRequirements(t, "../go.mod")
	for _, path := range riverSQLModules {
		version, ok := required[path]
		require.True(t, ok, "go.mod does not require %s", path)
		if version != riverSQLWrittenFor {
			t.Errorf("River moved from %s to %s (%s in go.mod): review river/riversql.go against the new version and update riverSQLWrittenFor", riverSQLWrittenFor, version, path)
		}
		if replaced[path] {
			t.Errorf("go.mod replaces %s: review river/riversql.go against the replacement and update riverSQLWrittenFor", path)
		}
	}
}

// goModRequirements returns the modules go.mod requires, with their
// versions, and those it replaces.
func goModRequirements(t *testing.T, path string) (required map[string]string, replaced map[string]bool) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	required, replaced = map[string]string{}, map[string]bool{}
	block := "" // the directive of the ( ... ) block the line is in
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line, _, _ := strings.Cut(scanner.Text(), "//")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		directive := block
		switch {
		case block != "" && fields[0] == ")":
			block = ""
			continue
		case block == "" && len(fields) == 2 && fields[1] == "(":
			block = fields[0]
			continue
		case block == "":
			directive, fields = fields[0], fields[1:]
		}
		switch {
		case directive == "require" && len(fields) >= 2:
			required[fields[0]] = fields[1]
		case directive == "replace" && len(fields) >= 1:
			replaced[fields[0]] = true
		}
	}
	require.NoError(t, scanner.Err())
	return required, replaced
}

// riverSQLReview is the end of every failure message of the schema checks.
var riverSQLReview = fmt.Sprintf("river/riversql.go relies on it (written for River %s): review it against the River in go.mod and update riverSQLWrittenFor", riverSQLWrittenFor)

// TestRiverSQLSchema checks, on a database migrated as wasso-runner
// migrates one, the columns, enum values and index the statements of
// riversql.go use.
func TestRiverSQLSchema(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})

	var columns []string
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(column_name::text ORDER BY column_name), '{}')
		FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'river_job'`, db.Schema).Scan(&columns))
	for _, column := range []string{"id", "queue", "scheduled_at", "state"} {
		require.Contains(t, columns, column, "river_job has no column %s; %s", column, riverSQLReview)
	}

	var stateType string
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT udt_name::text FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'river_job' AND column_name = 'state'`, db.Schema).Scan(&stateType))
	require.Equal(t, "river_job_state", stateType, "river_job.state is not a river_job_state; %s", riverSQLReview)
	var states []string
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(e.enumlabel::text ORDER BY e.enumsortorder), '{}')
		FROM pg_enum e
		JOIN pg_type ty ON ty.oid = e.enumtypid
		JOIN pg_namespace n ON n.oid = ty.typnamespace
		WHERE n.nspname = $1 AND ty.typname = 'river_job_state'`, db.Schema).Scan(&states))
	for _, state := range []string{"available", "scheduled"} {
		require.Contains(t, states, state, "river_job_state has no value %q; %s", state, riverSQLReview)
	}

	var indexColumns []string
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(a.attname::text ORDER BY k.ord), '{}')
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE n.nspname = $1 AND c.relname = 'river_job_prioritized_fetching_index'`, db.Schema).Scan(&indexColumns))
	require.GreaterOrEqual(t, len(indexColumns), 2, "river_job_prioritized_fetching_index is missing or has fewer than two columns (%v); %s", indexColumns, riverSQLReview)
	require.Equal(t, []string{"state", "queue"}, indexColumns[:2], "river_job_prioritized_fetching_index no longer starts with (state, queue): %v; %s", indexColumns, riverSQLReview)
}

// riverSQLProbeArgs is a job inserted only to capture River's insert
// notification.
type riverSQLProbeArgs struct{}

func (riverSQLProbeArgs) Kind() string { return "wasso.riversql_probe" }

// TestRiverSQLWakeIsRiversInsertNotification captures the notification
// River's client sends when it inserts an available job and checks that
// wakeExactSQL sends the same one, on the same channel, with the same
// payload, both with River's schema named and with search_path.
func TestRiverSQLWakeIsRiversInsertNotification(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{db.Schema + ".river_insert"}.Sanitize())
	require.NoError(t, err)
	next := func(what string) (channel, payload string) {
		t.Helper()
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(waitCtx)
		require.NoError(t, err, "no notification from %s on %s.river_insert; %s", what, db.Schema, riverSQLReview)
		return n.Channel, n.Payload
	}

	for _, schema := range []string{db.Schema, ""} {
		client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: schema})
		require.NoError(t, err)
		_, err = client.Insert(ctx, riverSQLProbeArgs{}, &river.InsertOpts{Queue: attendance.QueueExact})
		require.NoError(t, err)
		riverChannel, riverPayload := next("River's insert")

		require.NoError(t, wakeExact(ctx, db.Pool, schema, attendance.QueueExact))
		ourChannel, ourPayload := next("wakeExactSQL")

		require.Equal(t, riverChannel, ourChannel, "River notifies inserts on %q, wakeExactSQL on %q; %s", riverChannel, ourChannel, riverSQLReview)
		require.JSONEq(t, riverPayload, ourPayload, "River's insert payload is %s, wakeExactSQL's %s; %s", riverPayload, ourPayload, riverSQLReview)
	}
}
