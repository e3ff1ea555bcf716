package pgtemp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replication and crashes, for tests of how clients live through a
// primary failover. A cluster started by [Start] can serve streaming
// replication as is: initdb's pg_hba.conf trusts replication connections
// from 127.0.0.1, and wal_level and max_wal_senders keep their defaults
// (replica, 10). Replication is asynchronous, as in most deployments: a
// commit returns before the standby has it.

// StartStandby makes a streaming standby of primary, the way an operator
// does: pg_basebackup -R (a base backup that writes standby.signal and
// primary_conninfo) into a new temporary directory, then a server on a
// free port. It returns once the standby accepts read-only connections.
// Stop ends it like any cluster.
func StartStandby(ctx context.Context, primary *Cluster, opts Options) (_ *Cluster, err error) {
	c, err := newCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				c.log.Warn("pgtemp: cleanup after failed standby start", slog.Any("error", serr))
			}
		}
	}()
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=pgtemp_standby", primary.port)
	out, err := c.command(ctx, "pg_basebackup", "-d", conninfo, "-D", c.dataDir,
		"-R", "-X", "stream", "-c", "fast", "--no-sync").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgtemp: pg_basebackup from port %d: %w\n%s", primary.port, err, tail(out, 20))
	}
	if err := c.startServer(ctx); err != nil {
		return nil, err
	}
	c.log.Info("pgtemp: standby started", slog.Int("port", c.port), slog.Int("primary_port", primary.port))
	return c, nil
}

// Kill ends the server the way a crash of its host does: SIGKILL to the
// postmaster and to every one of its processes at once, so that nothing
// is flushed, checkpointed or sent to a standby any more. It returns once
// they are gone and the port refuses connections. The data directory
// stays: [Cluster.StartServer] would run crash recovery on it, and
// [Cluster.Stop] removes it.
func (c *Cluster) Kill(ctx context.Context) error {
	pid, err := c.postmasterPID()
	if err != nil {
		return err
	}
	pids := append([]int{pid}, childrenOf(pid)...)
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgtemp: kill %d: %w", p, err)
		}
	}
	for _, p := range pids {
		for running(p) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("pgtemp: process %d still running after SIGKILL: %w", p, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	// pg_ctl would take the stale pid file for a running server.
	if err := os.Remove(filepath.Join(c.dataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pgtemp: remove the killed server's pid file: %w", err)
	}
	c.log.Info("pgtemp: server killed", slog.Int("port", c.port), slog.Int("processes", len(pids)))
	return nil
}

// Promote makes a standby the primary (pg_ctl promote) and returns once
// it accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "promote", "-w", "-D", c.dataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtemp: pg_ctl promote: %w\n%s", err, tail(out, 10))
	}
	c.log.Info("pgtemp: standby promoted", slog.Int("port", c.port))
	return nil
}

// StopReceiving stops a standby's WAL receiver (primary_conninfo emptied,
// configuration reloaded) and returns once no receiver runs: from then
// on, the standby stays at what it has, and what the primary commits is
// lost if the primary dies before the standby is promoted. It is the
// window of asynchronous replication, held open on purpose.
func (c *Cluster) StopReceiving(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtemp: connect to the standby: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET primary_conninfo = ''`); err != nil {
		return fmt.Errorf("pgtemp: clear primary_conninfo: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		return fmt.Errorf("pgtemp: reload the standby's configuration: %w", err)
	}
	for {
		var receivers int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_wal_receiver`).Scan(&receivers); err != nil {
			return fmt.Errorf("pgtemp: look for the WAL receiver: %w", err)
		}
		if receivers == 0 {
			c.log.Info("pgtemp: standby stopped receiving WAL", slog.Int("port", c.port))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtemp: the standby's WAL receiver still runs: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// CatchUp returns once the standby c has replayed everything primary had
// written when CatchUp was called.
func (c *Cluster) CatchUp(ctx context.Context, primary *Cluster) error {
	var target string
	if err := queryRow(ctx, primary.URL("postgres"), `SELECT pg_current_wal_insert_lsn()::text`, &target); err != nil {
		return fmt.Errorf("pgtemp: the primary's WAL position: %w", err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtemp: connect to the standby: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	for {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, target).Scan(&done); err != nil {
			return fmt.Errorf("pgtemp: the standby's replay position: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtemp: the standby has not replayed up to %s: %w", target, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// queryRow runs one query on a connection of its own.
func queryRow(ctx context.Context, url, sql string, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// postmasterPID reads the first line of postmaster.pid.
func (c *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtemp: no running server: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pgtemp: postmaster.pid starts with %q, not a pid", line)
	}
	return pid, nil
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(p); ok && ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// running reports whether pid is a live process: not gone and not a
// zombie (a container's init may be slow to reap, or never reap, the
// postmaster pg_ctl left to it).
func running(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// procStat reads the parent and state of pid from /proc/PID/stat.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return 0, "", false
	}
	return ppid, fields[0], true
}
