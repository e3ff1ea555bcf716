package runner_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// binPath is the wasso-runner binary built once for the test process. The
// tests run it as a process, as an operator would, and read its output and
// exit code.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests mostly wait on child processes and Postgres, not on the
	// CPU, so they run more at once than GOMAXPROCS (2 on CI) unless told
	// otherwise with -parallel. Not many more: the server's connections
	// bound them (see connBudget), and a test that waits for its share
	// holds its schema's pool meanwhile.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	dir, err := os.MkdirTemp("", "wasso-runner-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "runner tests:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "wasso-runner")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/wasso-runner")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "runner tests: go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := wassotest.Run(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// connBudget is how many connections to the test server the tests of
// this package may hold at once. The server allows 100
// (max_connections); go test runs as many packages' tests at once as the
// machine has cores (two on CI), and the other packages' tests hold up to
// about 30; a connection the server refuses fails whatever asked for it,
// in a runner or in a test. Each test that runs the binary holds a share
// of the budget, reserved before its first process starts (see
// reserveConns); the tests that need more say so.
const connBudget = 56

// defaultTestConns is the share of a test that does not reserve one: a
// runner at work holds four to eight connections, a command one or two,
// the test's own pool one to three.
const defaultTestConns = 6

var budget struct {
	sync.Mutex
	cond     *sync.Cond
	free     int
	reserved map[string]int // by test name
	// Reservations are granted in the order they were asked for, so
	// that a test that needs many connections is not passed over by
	// tests that need a few for as long as any are free.
	next, serving uint64
}

func init() {
	budget.cond = sync.NewCond(&budget.Mutex)
	budget.free = connBudget
	budget.reserved = map[string]int{}
}

// reserveConns reserves n connections of connBudget for t until t ends,
// waiting until they are free. A test that needs more than
// defaultTestConns calls it first thing; newDB, and the helpers that
// start processes (startProc, runCLI, runInTerminal), reserve
// defaultTestConns for a test that has not. A test reserves once: further
// calls, and those of its subtests, use what it holds. So a test never
// waits for the budget while holding part of it, and the tests cannot
// deadlock on it.
func reserveConns(t *testing.T, n int) {
	t.Helper()
	budget.Lock()
	defer budget.Unlock()
	for name := t.Name(); ; {
		if _, ok := budget.reserved[name]; ok {
			return
		}
		i := strings.LastIndex(name, "/")
		if i < 0 {
			break
		}
		name = name[:i]
	}
	n = min(n, connBudget)
	ticket := budget.next
	budget.next++
	for budget.serving != ticket || budget.free < n {
		budget.cond.Wait()
	}
	budget.serving++
	budget.free -= n
	budget.reserved[t.Name()] = n
	budget.cond.Broadcast()
	t.Cleanup(func() {
		budget.Lock()
		defer budget.Unlock()
		budget.free += n
		delete(budget.reserved, t.Name())
		budget.cond.Broadcast()
	})
}

// newDB is wassotest.NewDB for this package's tests: it first reserves
// the test's share of connBudget (defaultTestConns unless the test
// reserved more), so that a test waits for its share, if it must, before
// it sets anything up: a deadline counted from now, a job scheduled in
// two hours.
func newDB(t *testing.T, opts wassotest.Options) *wassotest.DB {
	t.Helper()
	reserveConns(t, defaultTestConns)
	return wassotest.NewDB(t, opts)
}

// baseEnv is the test process's environment without anything that would
// configure the runner behind a test's back.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "WASSO_") || name == "DATABASE_URL" || strings.HasPrefix(name, "PG") || name == "GOMAXPROCS" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// cliOpts tune runCLI and startRunner.
type cliOpts struct {
	// env is added to baseEnv.
	env []string
	// dir is the working directory; empty means a new temporary one, so
	// that no wasso-runner.yaml is picked up by accident.
	dir string
	// stdin is the process's standard input; nil means /dev/null.
	stdin io.Reader
	// bin is the binary to run; empty means binPath.
	bin string
}

func (o cliOpts) binary() string {
	if o.bin != "" {
		return o.bin
	}
	return binPath
}

type result struct {
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the binary to completion. A run that the server refused a
// connection because every one of its connections was taken (the tests
// of all packages running at once) is run again after a pause, for two
// minutes at most: the command exits before doing anything then, and
// every command a test runs is made to be run again.
func runCLI(t *testing.T, opts cliOpts, args ...string) result {
	t.Helper()
	reserveConns(t, defaultTestConns)
	var stdin []byte
	if opts.stdin != nil {
		var err error
		stdin, err = io.ReadAll(opts.stdin)
		require.NoError(t, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		res := runCLIOnce(t, opts, stdin, args...)
		if res.code == 0 || !refusedConnection(res.stderr) || time.Now().After(deadline) {
			return res
		}
		t.Logf("%v: the server had no connection left (SQLSTATE 53300); running it again", args)
		time.Sleep(pause)
	}
}

func runCLIOnce(t *testing.T, opts cliOpts, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, opts.binary(), args...)
	cmd.Env = append(baseEnv(), opts.env...)
	cmd.Dir = opts.dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	if opts.stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if exitErr, ok := err.(*exec.ExitError); ok {
		res.code = exitErr.ExitCode()
	} else {
		require.NoError(t, err, "run %v", args)
	}
	return res
}

// refusedConnection reports whether a process's output says that the
// server refused it a connection because all of max_connections were
// taken.
func refusedConnection(output string) bool {
	return strings.Contains(output, "(SQLSTATE 53300)")
}

// dbArgs points the binary at a test's schema.
func dbArgs(db *wassotest.DB) []string {
	return []string{"--database-url", db.URL, "--schema", db.Schema}
}

func args(groups ...[]string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// proc is a wasso-runner started in the background (run).
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout wassotest.SyncBuffer
	stderr wassotest.SyncBuffer
	done   chan struct{}
	code   int
	exited time.Time
}

// startRunner starts `wasso-runner run` on db with JSON logs and HTTP on a
// free loopback port (unless the args say otherwise), and waits until it
// has started. A runner that cannot connect as it starts exits, by
// design, for its process manager to start it again: when the server
// refused it a connection because all of them were taken (the tests of
// every package running at once), startRunner starts it again, as a
// process manager would, for two minutes at most.
func startRunner(t *testing.T, db *wassotest.DB, opts cliOpts, extra ...string) *proc {
	t.Helper()
	return startRun(t, opts, args([]string{"run", "--log-format", "json", "--http-addr", "127.0.0.1:0", "--concurrency", "2"}, dbArgs(db), extra)...)
}

// startRun starts the binary with runArgs, a run command with JSON logs,
// and waits until it has started, starting it again as startRunner does.
func startRun(t *testing.T, opts cliOpts, runArgs ...string) *proc {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		p := startProc(t, opts, runArgs...)
		if p.waitStarted(t, time.Minute, time.Now().Before(deadline)) {
			return p
		}
		t.Logf("wasso-runner exited as it started: the server had no connection left (SQLSTATE 53300); starting it again")
		time.Sleep(pause)
	}
}

// waitStarted waits for p's start log line and returns true. If p exits
// before it, it fails the test, unless retry is set and the server
// refused p a connection because all of them were taken: then it returns
// false.
func (p *proc) waitStarted(t *testing.T, timeout time.Duration, retry bool) bool {
	t.Helper()
	const started = "wasso-runner started"
	refused := false
	wassotest.WaitFor(t, timeout, fmt.Sprintf("a %q log line", started), func() bool {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		for _, line := range p.logLines() {
			if line["msg"] == started {
				return true
			}
		}
		if !exited {
			return false
		}
		if retry && refusedConnection(p.stderr.String()) {
			refused = true
			return true
		}
		t.Fatalf("wasso-runner exited (code %d) while waiting for a %q log line", p.code, started)
		return false
	})
	return !refused
}

func startProc(t *testing.T, opts cliOpts, args ...string) *proc {
	t.Helper()
	reserveConns(t, defaultTestConns)
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(opts.binary(), args...)
	p.cmd.Env = append(baseEnv(), opts.env...)
	p.cmd.Dir = opts.dir
	if p.cmd.Dir == "" {
		p.cmd.Dir = t.TempDir()
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		p.exited = time.Now()
		if exitErr, ok := err.(*exec.ExitError); ok {
			p.code = exitErr.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("wasso-runner %v (pid %d):\n--- stdout\n%s--- stderr\n%s", args, p.cmd.Process.Pid, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// logLines parses the JSON log lines written so far.
func (p *proc) logLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitLog waits for a log line whose msg is msg and returns it. It fails
// the test if the process exits first. (The process's output is logged
// when the test fails, by startProc.)
func (p *proc) waitLog(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, p, timeout, fmt.Sprintf("a %q log line", msg), func() bool {
		for _, line := range p.logLines() {
			if line["msg"] == msg {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

// waitFor waits as wassotest.WaitFor does, failing the test as soon as p
// (if not nil) exits: these tests are about runners that must not exit.
func waitFor(t *testing.T, p *proc, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	wassotest.WaitFor(t, timeout, what, func() bool {
		// Whether p had exited is read before cond runs, so that a
		// condition on its output sees all of it when p is gone.
		exited := false
		if p != nil {
			select {
			case <-p.done:
				exited = true
			default:
			}
		}
		if cond() {
			return true
		}
		if exited {
			t.Fatalf("wasso-runner exited (code %d) while waiting for %s", p.code, what)
		}
		return false
	})
}

// baseURL is the runner's HTTP address, from its start log line.
func (p *proc) baseURL(t *testing.T) string {
	t.Helper()
	addr, ok := p.waitLog(t, "wasso-runner started", time.Minute)["http_addr"].(string)
	require.True(t, ok, "no http_addr in the start log line")
	return "http://" + addr
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("wasso-runner still running after %s", timeout)
		return 0
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// doHTTP performs a request and returns the status and body.
func doHTTP(t *testing.T, method, url string, body io.Reader, user, pass string) (int, string) {
	t.Helper()
	code, b, err := tryHTTP(method, url, body, user, pass)
	require.NoError(t, err)
	return code, b
}

// tryHTTP is doHTTP for Eventually conditions: it returns the error
// instead of failing the test.
func tryHTTP(method, url string, body io.Reader, user, pass string) (int, string, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// controlClient is an insert-only River client on a test's schema.
func controlClient(t *testing.T, db *wassotest.DB) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: db.Schema})
	require.NoError(t, err)
	return client
}

// noopArgs is a job kind no runner works, for jobs and inspect tests: it
// stays where the test puts it.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "test.noop" }

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	n, err := queryInt(pool, sql, args...)
	require.NoError(t, err)
	return n
}

// countNoFail is count for Eventually conditions: -1 on error.
func countNoFail(db *wassotest.DB, sql string, args ...any) int {
	n, err := queryInt(db.Pool, sql, args...)
	if err != nil {
		return -1
	}
	return n
}

// queryInt runs a query returning one integer. It returns errors instead
// of failing the test, for Eventually conditions (the database may be
// away when they run).
func queryInt(pool *pgxpool.Pool, sql string, args ...any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	err := pool.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// dueClub creates a club of members and one event whose deadline passed
// ten minutes ago (by the database clock, which settlement uses), with no
// attendance rows: a sweep creates one ABSENT row per member.
func dueClub(t *testing.T, db *wassotest.DB, members int) (*seed.Club, int64) {
	t.Helper()
	ctx := context.Background()
	var now time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now))
	club, err := seed.CreateClub(ctx, db.Pool, "Club "+t.Name(), members, now.Add(-48*time.Hour))
	require.NoError(t, err)
	eventID, err := seed.CreateEvent(ctx, db.Pool, seed.Event{
		GenerationID: club.GenerationID,
		Title:        "Weekly meeting",
		Start:        now.Add(-40 * time.Minute),
		StartMinutes: -10,
		LateMinutes:  10,
		FailMinutes:  30,
	}, now.Add(-24*time.Hour))
	require.NoError(t, err)
	return club, eventID
}

// oneLine asserts a message is a single line and returns it.
func oneLine(t *testing.T, s string) string {
	t.Helper()
	s = strings.TrimRight(s, "\n")
	require.NotContains(t, s, "\n", "want one line, got:\n%s", s)
	return s
}
