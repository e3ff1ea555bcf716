// Package pgtemp starts a private, throwaway PostgreSQL cluster from the
// Postgres server binaries installed on the machine. It is meant for tests
// and for the zero-config demo; it is not a way to run a real database.
//
// A cluster lives in a fresh temporary directory (see [Cluster.Dir]) with
// this layout:
//
//	DIR/data        data directory created by initdb
//	DIR/server.log  server log (its tail is included in start errors)
//	DIR/.s.PGSQL.*  Unix socket, so /var/run/postgresql is never needed
//
// The server listens on a free TCP port on 127.0.0.1 only, trusts every
// local connection (initdb -A trust) for the superuser "postgres", and runs
// with fsync, synchronous_commit and full_page_writes off: fast, and all data
// is lost on a crash, which is the point. After [Start] the databases
// "postgres" and [Database] ("wasso") exist; [Cluster.URL] builds a pgx/libpq
// connection URL for either.
//
// initdb, pg_ctl and postgres refuse to run as root. When the calling
// process is root, pgtemp runs them as the "postgres" OS user (it owns the
// temporary directory); that user, and every parent of [Options.Dir], must
// therefore be usable by it. /tmp is.
//
// # Lifetime
//
// [Cluster.Stop] is the normal way to end a cluster: it stops the server
// (immediate mode) and removes the directory. Because pg_ctl detaches the
// server from the calling process, a process that dies without calling Stop
// would leave the server running. To limit that, Start also launches a tiny
// watchdog (/bin/sh, in its own session so a terminal Ctrl-C does not reach
// it) that holds the read end of a pipe from the calling process. When the
// process exits for any reason, including SIGKILL, a panic or a go test
// timeout, the kernel closes the pipe and the watchdog stops the server and
// removes the directory. What is not covered: the watchdog itself being
// killed (e.g. kill -9 of every process of the user or the container being
// torn down, where everything dies anyway), a process dying in the short
// window between pg_ctl starting the postmaster and the postmaster writing
// its pid file, and machine crashes (temporary directories then remain until
// the OS cleans its temp dir). Stop tells the watchdog to exit without doing
// anything.
//
// pgtemp only works on Unix-like systems.
package pgtemp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is the application database that [Start] creates in addition to
// the "postgres" database that initdb always creates.
const Database = "wasso"

// ErrNoBinaries is wrapped by the error [FindBinaries] (and [Start]) returns
// when no directory holding initdb, pg_ctl and postgres could be found.
var ErrNoBinaries = errors.New("no Postgres server binaries")

// installHint completes the ErrNoBinaries message: where we looked and what
// to install.
const installHint = `(initdb, pg_ctl, postgres) found in $PATH, /usr/lib/postgresql/*/bin or /usr/local/pgsql/bin: ` +
	`install them with "apt-get install postgresql" (Debian/Ubuntu; the server binaries end up in /usr/lib/postgresql/VERSION/bin) ` +
	`or with your distribution's PostgreSQL server package`

// requiredBinaries must all be present in the directory FindBinaries returns.
var requiredBinaries = []string{"initdb", "pg_ctl", "postgres"}

// Search locations, variables only so that the order is documented in one
// place.
var (
	debianGlob   = "/usr/lib/postgresql/*/bin"
	fallbackDirs = []string{"/usr/local/pgsql/bin"}
)

// FindBinaries returns the directory holding the Postgres server binaries
// initdb, pg_ctl and postgres. It looks, in order, at the directory of
// initdb found in $PATH (following symlinks, so a /usr/local/bin/initdb
// symlink into a Debian version directory resolves to that directory), at
// /usr/lib/postgresql/*/bin (Debian/Ubuntu layout, highest major version
// first) and at /usr/local/pgsql/bin (source install default). When none has
// all three binaries, the error wraps [ErrNoBinaries] and says what to
// install.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		candidates := []string{}
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(resolved))
		}
		candidates = append(candidates, filepath.Dir(p))
		for _, dir := range candidates {
			if hasBinaries(dir) {
				return dir, nil
			}
		}
	}

	if matches, _ := filepath.Glob(debianGlob); len(matches) > 0 {
		slices.SortStableFunc(matches, func(a, b string) int {
			// Highest version first.
			return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
		})
		for _, dir := range matches {
			if hasBinaries(dir) {
				return dir, nil
			}
		}
	}

	for _, dir := range fallbackDirs {
		if hasBinaries(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w %s", ErrNoBinaries, installHint)
}

// hasBinaries reports whether dir holds all requiredBinaries as executable
// files.
func hasBinaries(dir string) bool {
	for _, name := range requiredBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// compareVersions compares dotted numeric versions such as "9.6" and "16".
// Non-numeric parts compare lower than any number.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		ai, bi := -1, -1
		if i < len(as) {
			if n, err := strconv.Atoi(as[i]); err == nil {
				ai = n
			}
		}
		if i < len(bs) {
			if n, err := strconv.Atoi(bs[i]); err == nil {
				bi = n
			}
		}
		if ai != bi {
			if ai < bi {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}

// Options configures [Start]. The zero value is ready to use.
type Options struct {
	// Dir is the parent of the cluster's temporary directory; default
	// os.TempDir(). When running as root, the "postgres" OS user must be able
	// to traverse it.
	Dir string

	// InstallMissing, when the binaries are missing, the process is root and
	// apt-get exists, runs "apt-get update" and then
	// "DEBIAN_FRONTEND=noninteractive apt-get install -y
	// --no-install-recommends postgresql" before looking again. Their output
	// goes to Logger (info level, one record per line) or, when Logger is
	// nil, to stderr. Note that the Debian package also creates (and may try
	// to start) its own "main" cluster on port 5432; pgtemp does not use it.
	InstallMissing bool

	// Logger receives structured progress logs. Nil discards them.
	Logger *slog.Logger
}

// Cluster is a running throwaway Postgres cluster. Use [Cluster.Stop] to end
// it.
type Cluster struct {
	dir     string // temporary root directory, removed by Stop
	dataDir string
	logFile string
	binDir  string
	port    int
	runAs   *syscall.Credential // non-nil when commands run as another user
	log     *slog.Logger

	watchdog     *exec.Cmd
	watchdogPipe io.WriteCloser

	stopOnce sync.Once
	stopErr  error
}

// live keeps every started, not yet stopped cluster reachable. Besides
// bookkeeping, it keeps the watchdog pipe from being closed by a finalizer
// when a caller keeps only a URL and drops the *Cluster: that would make the
// watchdog stop a cluster still in use.
var live sync.Map // *Cluster -> struct{}

// URL returns a connection URL for database on this cluster, as the trusted
// superuser "postgres" over TCP:
// postgres://postgres@127.0.0.1:PORT/DATABASE?sslmode=disable.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// Port returns the TCP port the server listens on (127.0.0.1 only).
func (c *Cluster) Port() int { return c.port }

// Dir returns the cluster's temporary directory (data directory, log and
// socket live inside it). Stop removes it.
func (c *Cluster) Dir() string { return c.dir }

// startAttempts is how many ports Start tries when the chosen one turns out
// to be taken between picking it and the server binding it.
const startAttempts = 5

// Start creates a temporary directory, runs initdb in it, starts the server
// on a free loopback port, creates the [Database] database and returns the
// running cluster. On error, everything it created is cleaned up. ctx bounds
// the start only; the cluster then lives until [Cluster.Stop] or the end of
// the process.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	begin := time.Now()

	c, err := newCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				c.log.Warn("pgtemp: cleanup after failed start", slog.Any("error", serr))
			}
		}
	}()
	binDir, runAs, parent := c.binDir, c.runAs, filepath.Dir(c.dir)

	c.log.Debug("pgtemp: initdb", slog.String("bin_dir", binDir), slog.Bool("as_postgres_user", runAs != nil))
	initdb := c.command(ctx, "initdb",
		"-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		hint := ""
		if runAs != nil {
			hint = fmt.Sprintf(" (running as OS user postgres: %s and all its parents must be accessible to that user)", parent)
		}
		return nil, fmt.Errorf("pgtemp: initdb: %w%s\n%s", err, hint, tail(out, 20))
	}

	if err := c.startServer(ctx); err != nil {
		return nil, err
	}

	if err := c.createDatabase(ctx, Database); err != nil {
		return nil, err
	}

	c.log.Info("pgtemp: cluster started",
		slog.Int("port", c.port),
		slog.String("bin_dir", binDir),
		slog.Duration("elapsed", time.Since(begin)))
	return c, nil
}

// newCluster finds the binaries and creates the temporary directory of a
// cluster not yet initialized, with its watchdog. Stop cleans it up.
func newCluster(ctx context.Context, opts Options) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	binDir, err := FindBinaries()
	if errors.Is(err, ErrNoBinaries) && opts.InstallMissing {
		if ierr := installPostgres(ctx, log, opts.Logger == nil); ierr != nil {
			return nil, fmt.Errorf("pgtemp: %w; installing automatically failed: %v", err, ierr)
		}
		binDir, err = FindBinaries()
	}
	if err != nil {
		return nil, fmt.Errorf("pgtemp: %w", err)
	}

	var runAs *syscall.Credential
	if os.Geteuid() == 0 {
		runAs, err = postgresUser()
		if err != nil {
			return nil, err
		}
	}

	parent := opts.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "pgtemp-")
	if err != nil {
		return nil, fmt.Errorf("pgtemp: create temporary directory: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtemp: %w", err)
	}
	if runAs != nil {
		if err := os.Chown(dir, int(runAs.Uid), int(runAs.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtemp: chown %s to the postgres user: %w", dir, err)
		}
	}

	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "server.log"),
		binDir:  binDir,
		runAs:   runAs,
		log:     log.With(slog.String("dir", dir)),
	}
	live.Store(c, struct{}{})
	c.startWatchdog()
	return c, nil
}

// startServer picks a free port and runs pg_ctl start, retrying with another
// port when the server could not bind the chosen one.
func (c *Cluster) startServer(ctx context.Context) error {
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("pgtemp: pick a free port: %w", err)
		}
		serverOpts := c.serverOptions(port)
		_ = os.Remove(c.logFile) // so that the tail we report is this attempt's
		c.log.Debug("pgtemp: starting server", slog.Int("port", port), slog.Int("attempt", attempt))
		cmd := c.command(ctx, "pg_ctl", "-w", "-D", c.dataDir, "-o", serverOpts, "-l", c.logFile, "start")
		out, err := cmd.CombinedOutput()
		if err == nil {
			c.port = port
			return nil
		}
		logTail := c.logTail(30)
		lastErr = fmt.Errorf("pgtemp: pg_ctl start on port %d: %w\n%s\nserver log (%s), last lines:\n%s",
			port, err, tail(out, 10), c.logFile, logTail)
		if ctx.Err() != nil || !portInUse(logTail) {
			return lastErr
		}
		c.log.Warn("pgtemp: port taken, retrying with another one", slog.Int("port", port), slog.Int("attempt", attempt))
		// Make sure no half-started server remains before retrying.
		_, _ = c.command(context.Background(), "pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "stop").CombinedOutput()
	}
	return lastErr
}

// serverOptions are the server's settings for pg_ctl -o, which passes them
// through /bin/sh, hence the quoting.
func (c *Cluster) serverOptions(port int) string {
	// A Unix socket path is limited to about 107 bytes; when the temporary
	// directory is too deep for it, disable the socket (TCP is all we use).
	socketDir := c.dir
	if len(filepath.Join(c.dir, ".s.PGSQL.65535.lock")) > 100 {
		socketDir = ""
	}
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "+
		"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		port, shellQuote(socketDir))
}

// StopServer stops the server the way an orderly restart of Postgres does
// (pg_ctl -m fast: every client is disconnected and a checkpoint is
// written, so no committed transaction is lost despite synchronous_commit
// being off) and keeps the data directory, so that [Cluster.StartServer]
// brings the same cluster back on the same port. It is for tests of how
// clients live through a database restart. [Cluster.Stop] still ends the
// cluster, running or not.
func (c *Cluster) StopServer(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtemp: pg_ctl stop: %w\n%s", err, tail(out, 10))
	}
	c.log.Info("pgtemp: server stopped", slog.Int("port", c.port))
	return nil
}

// StartServer starts the server again after [Cluster.StopServer], on the
// same port and data directory, and returns once it accepts connections.
// Unlike Start it cannot move to another port, since clients keep the
// address they were given: it fails if another process took the port
// meanwhile.
func (c *Cluster) StartServer(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "-w", "-D", c.dataDir, "-o", c.serverOptions(c.port), "-l", c.logFile, "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtemp: pg_ctl start on port %d: %w\n%s\nserver log (%s), last lines:\n%s",
			c.port, err, tail(out, 10), c.logFile, c.logTail(30))
	}
	c.log.Info("pgtemp: server started again", slog.Int("port", c.port))
	return nil
}

// createDatabase creates database name, connecting to the "postgres" one.
func (c *Cluster) createDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtemp: connect to the new cluster: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgtemp: create database %s: %w", name, err)
	}
	return nil
}

// Stop stops the server (pg_ctl -m immediate) and removes the temporary
// directory. It is idempotent: later calls return the first call's result,
// nil if that one succeeded.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err == nil {
			out, err := c.command(context.Background(), "pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "stop").CombinedOutput()
			if err != nil {
				errs = append(errs, fmt.Errorf("pgtemp: pg_ctl stop: %w\n%s", err, tail(out, 10)))
			}
		}
		// Only remove the directory once the server is known to be gone;
		// otherwise keep it (and the watchdog) for a later attempt at exit.
		if len(errs) == 0 {
			if err := os.RemoveAll(c.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("pgtemp: remove %s: %w", c.dir, err))
			}
			c.releaseWatchdog()
			live.Delete(c)
		}
		c.stopErr = errors.Join(errs...)
		if c.stopErr != nil {
			c.log.Error("pgtemp: stop failed", slog.Any("error", c.stopErr))
		} else {
			c.log.Info("pgtemp: cluster stopped", slog.Int("port", c.port))
		}
	})
	return c.stopErr
}

// watchdogScript waits for a line on stdin. Stop sends "done"; anything else,
// in particular EOF because the parent process died, makes it stop the server
// and remove the directory. $1 = pg_ctl, $2 = data dir, $3 = temporary dir.
const watchdogScript = `trap '' HUP INT
IFS= read -r line
if [ "$line" != done ]; then
	"$1" -D "$2" -m immediate -w stop >/dev/null 2>&1
	rm -rf "$3"
fi
`

// startWatchdog launches the process that cleans up after an abnormal exit.
// A failure is logged, not fatal: the watchdog is a safety net.
func (c *Cluster) startWatchdog() {
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "pgtemp-watchdog",
		filepath.Join(c.binDir, "pg_ctl"), c.dataDir, c.dir)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: c.runAs}
	pipe, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		c.log.Warn("pgtemp: no watchdog; the cluster will outlive this process if it dies without Stop",
			slog.Any("error", err))
		return
	}
	c.watchdog, c.watchdogPipe = cmd, pipe
}

// releaseWatchdog tells the watchdog all is done and waits for it to exit.
func (c *Cluster) releaseWatchdog() {
	if c.watchdog == nil {
		return
	}
	_, _ = io.WriteString(c.watchdogPipe, "done\n")
	_ = c.watchdogPipe.Close()
	_ = c.watchdog.Wait()
	c.watchdog, c.watchdogPipe = nil, nil
}

// command builds an exec.Cmd for one of the Postgres binaries, run as the
// postgres OS user when needed, from inside the temporary directory (a
// current directory the postgres user cannot enter makes initdb complain).
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	if c.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs}
	}
	return cmd
}

// childEnv is the environment minus PG* variables, which could redirect the
// tools (PGDATA, PGPORT, PGHOST, ...).
func childEnv() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// postgresUser returns the credential of the "postgres" OS user.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf(`pgtemp: running as root, and initdb/postgres refuse to run as root, `+
			`but there is no "postgres" OS user to run them as (%v): create one `+
			`(e.g. "useradd --system --home-dir /var/lib/postgresql postgres", which the postgresql package also does) `+
			`or run as a non-root user`, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtemp: postgres OS user: %w", err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return cred, nil
}

// installPostgres runs apt-get to install the server binaries.
func installPostgres(ctx context.Context, log *slog.Logger, toStderr bool) error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return fmt.Errorf("apt-get not found: %w", err)
	}
	log.Info("pgtemp: installing PostgreSQL with apt-get")
	steps := [][]string{
		{"update"},
		{"install", "-y", "--no-install-recommends", "postgresql"},
	}
	for _, args := range steps {
		cmd := exec.CommandContext(ctx, aptGet, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		var w io.Writer = os.Stderr
		if !toStderr {
			lw := &lineLogger{log: log, cmd: "apt-get " + args[0]}
			defer lw.flush()
			w = lw
		}
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
	}
	return nil
}

// lineLogger turns command output into one log record per line.
type lineLogger struct {
	mu  sync.Mutex
	log *slog.Logger
	cmd string
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emit(l.buf)
	l.buf = nil
}

func (l *lineLogger) emit(line []byte) {
	if s := strings.TrimSpace(string(line)); s != "" {
		l.log.Info("pgtemp: "+l.cmd, slog.String("line", s))
	}
}

// freePort asks the kernel for a free loopback TCP port. Another process may
// take it before the server binds it; startServer retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portInUse reports whether a server log says the port could not be bound.
func portInUse(log string) bool {
	return strings.Contains(log, "Address already in use") ||
		strings.Contains(log, "could not create any TCP/IP sockets")
}

// logTail returns the last n lines of the server log.
func (c *Cluster) logTail(n int) string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	return tail(b, n)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
