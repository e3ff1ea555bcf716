// Package pgbouncer runs Debian's PgBouncer in transaction pooling mode in
// front of a Postgres server, for the tests and benchmarks that must show
// how the runner behaves behind a connection pooler.
package pgbouncer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is returned by Start when no pgbouncer binary is found.
var ErrNotInstalled = errors.New("pgbouncer not found: install it (apt-get install -y pgbouncer)")

// Bouncer is a running PgBouncer.
type Bouncer struct {
	// URL connects through the pooler to the server's database, as the
	// server URL's user, without search_path (see Start).
	URL string

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs PgBouncer in transaction pooling mode on a free loopback
// port, in front of the database serverURL names. PgBouncer refuses the
// search_path startup parameter, so the server connections it opens run
// SET search_path TO schema first (its connect_query) when schema is not
// empty. It returns once a connection through it works. As root it runs
// as the postgres user, since PgBouncer will not run as root.
func Start(ctx context.Context, serverURL, schema string) (*Bouncer, error) {
	return StartMode(ctx, serverURL, schema, "transaction")
}

// StartMode is Start with another pooling mode: "session", "transaction"
// or "statement" (PgBouncer's pool_mode). In session mode, a server
// connection a client leaves is cleaned of prepared statements and LISTENs
// (server_reset_query) but keeps connect_query's search_path, which
// PgBouncer's default, DISCARD ALL, would reset.
func StartMode(ctx context.Context, serverURL, schema, mode string) (*Bouncer, error) {
	switch mode {
	case "session", "transaction", "statement":
	default:
		return nil, fmt.Errorf("pgbouncer: pool mode %q: want session, transaction or statement", mode)
	}
	bin, err := find()
	if err != nil {
		return nil, err
	}
	server, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: server URL: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		return nil, err
	}
	b := &Bouncer{dir: dir, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			b.Stop()
		}
	}()
	// Readable and writable by the postgres user when run as root.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, err
	}
	conn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", server.Host, server.Port, server.Database, server.User)
	if server.Password != "" {
		conn += " password=" + server.Password
	}
	if schema != "" {
		conn += " connect_query='SET search_path TO " + pgx.Identifier{schema}.Sanitize() + "'"
	}
	ini := fmt.Sprintf(`[databases]
wasso = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = %s
default_pool_size = 20
server_reset_query = DEALLOCATE ALL; UNLISTEN *
max_client_conn = 500
logfile = %s
pidfile = %s
`, conn, port, mode, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
		return nil, err
	}
	args := []string{iniPath}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, errors.New("pgbouncer will not run as root, and there is no postgres user to run it as")
		}
		args = []string{"-u", "postgres", iniPath}
	}
	b.cmd = exec.Command(bin, args...)
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()

	b.URL = fmt.Sprintf("postgres://%s@127.0.0.1:%d/wasso?sslmode=disable", server.User, port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-b.done:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			return nil, fmt.Errorf("pgbouncer exited: %s", log)
		default:
		}
		if b.answers(ctx, schema) {
			ok = true
			return b, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("pgbouncer did not accept connections within 30s")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// answers says whether a connection through the pooler reaches the
// server, in schema when it is set.
func (b *Bouncer) answers(ctx context.Context, schema string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, b.URL+"&default_query_exec_mode=exec")
	if err != nil {
		return false
	}
	defer c.Close(ctx)
	var current *string
	if err := c.QueryRow(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		return false
	}
	return schema == "" || (current != nil && *current == schema)
}

// Stop stops PgBouncer and removes its directory.
func (b *Bouncer) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	}
	_ = os.RemoveAll(b.dir)
}

func find() (string, error) {
	if bin, err := exec.LookPath("pgbouncer"); err == nil {
		return bin, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
