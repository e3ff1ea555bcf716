// Package wassotest gives tests a real Postgres: each test gets a schema of
// its own holding the Wasso tables, River's tables and the scheduler's, so
// that tests and packages run in parallel without seeing each other.
//
// The server is found in this order: the URL in WASSO_TEST_DATABASE_URL;
// a server on 127.0.0.1:5432 (databases test, then postgres, as user
// postgres); else a private throwaway cluster started with the machine's
// Postgres binaries, stopped when the test binary's TestMain returns.
package wassotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasso/scheduler/internal/pgtemp"
	"github.com/wasso/scheduler/migrations"
)

// EnvDatabaseURL names the variable that points tests at a server.
const EnvDatabaseURL = "WASSO_TEST_DATABASE_URL"

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
	cluster    *pgtemp.Cluster

	adminOnce sync.Once
	adminPool *pgxpool.Pool
	adminErr  error
)

// Main runs the tests, stops the private cluster if one was started, and
// exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that has cleaning up of its own to do after
// the tests: it returns the exit status instead of exiting.
func Run(m *testing.M) int {
	code := m.Run()
	if adminPool != nil {
		adminPool.Close()
	}
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "wassotest: stop cluster:", err)
		}
	}
	return code
}

// ServerURL returns the URL of a database on which tests may create
// schemas, finding or starting a server the first time it is called.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	serverOnce.Do(func() { serverURL, serverErr = findServer() })
	if serverErr != nil {
		tb.Fatalf("wassotest: no Postgres for tests: %v", serverErr)
	}
	return serverURL
}

func findServer() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if url := os.Getenv(EnvDatabaseURL); url != "" {
		if err := ping(ctx, url); err != nil {
			return "", fmt.Errorf("%s is set but does not answer: %w", EnvDatabaseURL, err)
		}
		return url, nil
	}
	for _, db := range []string{"test", "postgres"} {
		url := "postgres://postgres@127.0.0.1:5432/" + db + "?sslmode=disable"
		if ping(ctx, url) == nil {
			return url, nil
		}
	}
	c, err := pgtemp.Start(ctx, pgtemp.Options{})
	if err != nil {
		return "", fmt.Errorf("nothing answers on 127.0.0.1:5432 and no private cluster could be started: %w", err)
	}
	cluster = c
	return c.URL("postgres"), nil
}

// ping connects to url. A server that refuses the connection because
// all its connections are taken (TooManyClients) is there, and is asked
// again.
func ping(ctx context.Context, url string) error {
	return RetryTooManyClients(func() error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return conn.Ping(ctx)
	})
}

// TooManyClients reports whether err is the server refusing a connection
// because every one of its max_connections is taken (SQLSTATE 53300).
// With the tests of every package running at once, and maybe other test
// runs on the same server, that happens for moments: it says nothing of
// the code under test, only that a connection must be asked for again.
func TooManyClients(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == tooManyClientsCode
	}
	return err != nil && strings.Contains(err.Error(), "(SQLSTATE "+tooManyClientsCode+")")
}

const tooManyClientsCode = "53300"

// tooManyClientsPatience is how long RetryTooManyClients keeps asking.
const tooManyClientsPatience = 2 * time.Minute

// RetryTooManyClients calls f until it returns anything but a
// TooManyClients error, for two minutes at most, pausing between calls
// (50 ms, doubling up to 1 s). f must be safe to call again after failing
// to connect. It is for setting up and tearing down tests, not for the
// code they test.
func RetryTooManyClients(f func() error) error {
	deadline := time.Now().Add(tooManyClientsPatience)
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		err := f()
		if !TooManyClients(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
	}
}

// AdminPool is a pool on ServerURL shared by the whole test binary.
func AdminPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := ServerURL(tb)
	adminOnce.Do(func() {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			adminErr = err
			return
		}
		// It creates and drops schemas, statements of milliseconds: four
		// connections serve a package's tests, and leave the server's
		// connections to the tests themselves.
		cfg.MaxConns = 4
		adminPool, adminErr = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	if adminErr != nil {
		tb.Fatalf("wassotest: admin pool: %v", adminErr)
	}
	return adminPool
}

// DB is a schema of a test's own, migrated.
type DB struct {
	// Pool has search_path set to Schema. Its URL is URL.
	Pool *pgxpool.Pool
	// Schema is the schema's name.
	Schema string
	// URL connects to the server with search_path set to Schema.
	URL string
}

// Options tunes NewDB.
type Options struct {
	// Bare leaves the schema empty: no Wasso, River or wasso_ tables.
	Bare bool
	// MaxConns sets the pool size; zero means 10.
	MaxConns int32
}

// NewDB creates a schema for this test, with the Wasso tables, River's
// tables and the scheduler's migrated into it (unless opts.Bare), and
// drops it when the test ends.
func NewDB(tb testing.TB, opts Options) *DB {
	tb.Helper()
	ctx := context.Background()
	admin := AdminPool(tb)
	schema := "wt_" + randomHex(6)
	exec := func(sql string) error {
		return RetryTooManyClients(func() error {
			_, err := admin.Exec(context.Background(), sql)
			return err
		})
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("wassotest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			tb.Errorf("wassotest: drop schema %s: %v", schema, err)
		}
	})
	url := WithSearchPath(ServerURL(tb), schema)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("wassotest: parse url: %v", err)
	}
	cfg.MaxConns = 10
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("wassotest: pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	if !opts.Bare {
		// Migrating again after a failure to connect goes on where the
		// first attempt stopped.
		err := RetryTooManyClients(func() error {
			_, err := migrations.Up(ctx, pool, migrations.Options{Schema: schema, WithWassoSchema: true})
			return err
		})
		if err != nil {
			tb.Fatalf("wassotest: migrate: %v", err)
		}
	}
	return &DB{Pool: pool, Schema: schema, URL: url}
}

// WithSearchPath returns url with search_path set to schema.
func WithSearchPath(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// exampleTB lets Example functions, which have no *testing.T, use NewDB:
// failures panic and cleanups run when the Example calls the returned func.
type exampleTB struct {
	testing.TB
	cleanups []func()
}

func (e *exampleTB) Helper()                   {}
func (e *exampleTB) Cleanup(f func())          { e.cleanups = append(e.cleanups, f) }
func (e *exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (e *exampleTB) Errorf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// ExampleDB is NewDB for Example functions. Call the returned func when
// done; it drops the schema.
func ExampleDB() (*DB, func()) {
	tb := &exampleTB{}
	db := NewDB(tb, Options{})
	return db, func() {
		for i := len(tb.cleanups) - 1; i >= 0; i-- {
			tb.cleanups[i]()
		}
	}
}
