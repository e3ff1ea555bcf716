package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/wasso/scheduler/internal/leaderloop"
)

// Runner liveness.
//
// River writes the ID of the client working a job in river_job.attempted_by,
// but River OSS keeps no record of which clients are alive: river_leader
// names the leader alone, river_queue's updated_at is per queue, and the
// river_client table was dropped unused. So each runner registers its
// client in wasso_runner (migration 004) and refreshes heartbeat_at every
// RunnerHeartbeatInterval; `inspect active` reports a runner whose
// heartbeat is older than RunnerLostAfter as lost.
//
// A heartbeat written and read with the database clock needs no clock
// agreement between hosts. Checks on the runner's connections instead
// (pg_stat_activity's application_name, a session advisory lock) were
// rejected: a killed runner's backend that is blocked on a lock stays in
// pg_stat_activity until it next writes to its socket, so the runner would
// look alive for exactly the jobs it left stuck; a host that vanishes
// without closing its connections looks alive until TCP keepalives give up
// (two hours by default); and a transaction-mode pooler breaks both.
const (
	// RunnerHeartbeatInterval is how often a running runner refreshes its
	// wasso_runner row.
	RunnerHeartbeatInterval = 5 * time.Second
	// RunnerLostAfter is how old a heartbeat may be before the runner is
	// reported lost: four intervals, so that a heartbeat or two delayed by
	// a busy pool or database does not report a live runner lost.
	RunnerLostAfter = 4 * RunnerHeartbeatInterval
	// runnerRowRetention is how long the row of a runner that stopped
	// heartbeating is kept, for `inspect active` to name a runner that
	// left jobs behind. River rescues those within minutes.
	runnerRowRetention = 24 * time.Hour
)

// Runner states, as `inspect active` prints them.
const (
	runnerAlive   = "alive"
	runnerLost    = "lost"
	runnerStopped = "stopped"
	runnerUnknown = "unknown"
)

// registerRunner records the runner's River client in wasso_runner, and
// deletes the rows of runners gone for a day.
func (a *app) registerRunner(ctx context.Context, pool *pgxpool.Pool, clientID string) error {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "unknown"
	}
	_, err = pool.Exec(ctx, `
		INSERT INTO wasso_runner (client_id, hostname, pid, version, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, now(), now())
		ON CONFLICT (client_id) DO UPDATE
		    SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, version = EXCLUDED.version,
		        started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL`,
		clientID, hostname, os.Getpid(), versionString())
	if err != nil {
		return fmt.Errorf("register runner %s: %w", clientID, err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM wasso_runner WHERE heartbeat_at < now() - make_interval(secs => $1)`,
		runnerRowRetention.Seconds()); err != nil {
		return fmt.Errorf("delete old runner rows: %w", err)
	}
	return nil
}

// heartbeat refreshes the runner's row every RunnerHeartbeatInterval until
// ctx is done. A failed beat is logged and the next one tries again: the
// runner keeps working, and is reported lost only if the database stays
// out of its reach for RunnerLostAfter.
func (a *app) heartbeat(ctx context.Context, pool *pgxpool.Pool, clientID string, running func() []int64) {
	ticker := time.NewTicker(RunnerHeartbeatInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		beatCtx, cancel := context.WithTimeout(ctx, RunnerHeartbeatInterval)
		_, err := pool.Exec(beatCtx, `UPDATE wasso_runner SET heartbeat_at = now(), running_job_ids = $2 WHERE client_id = $1 AND stopped_at IS NULL`,
			clientID, running())
		cancel()
		if err != nil && ctx.Err() == nil {
			a.logger.Warn("runner heartbeat failed", slog.String("client_id", clientID), slog.String("error", a.redact.redact(err.Error())))
		}
	}
}

// markRunnerStopped records a clean stop, so that `inspect active` tells a
// runner that stopped from one that died.
func (a *app) markRunnerStopped(pool *pgxpool.Pool, clientID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := pool.Exec(ctx, `UPDATE wasso_runner SET stopped_at = now() WHERE client_id = $1`, clientID); err != nil {
		a.logger.Warn("could not record the runner's stop", slog.String("client_id", clientID), slog.String("error", a.redact.redact(err.Error())))
	}
}

// runnerJSON is the runner holding a job, as `inspect active` prints it.
type runnerJSON struct {
	// ID is the River client ID (the last of the job's attempted_by).
	ID string `json:"id"`
	// State is alive, lost (no heartbeat for RunnerLostAfter: killed, or
	// cut off from the database), stopped (it stopped cleanly) or unknown
	// (not a wasso-runner, such as a backend's own River client, or one
	// older than the heartbeat).
	State string `json:"state"`
	// Alive is null when State is unknown.
	Alive       *bool      `json:"alive"`
	Hostname    string     `json:"hostname,omitempty"`
	PID         int        `json:"pid,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	HeartbeatAt *time.Time `json:"heartbeat_at,omitempty"`
	StoppedAt   *time.Time `json:"stopped_at,omitempty"`
	// SilentFor is how long ago, by the database clock, the last
	// heartbeat was written.
	SilentFor string `json:"silent_for,omitempty"`
}

// runnerStates looks up the runners of clientIDs. IDs without a row, and
// every ID on a database without wasso_runner (not migrated yet), are
// unknown.
func (a *app) runnerStates(ctx context.Context, pool *pgxpool.Pool, clientIDs []string) (map[string]runnerJSON, error) {
	out := make(map[string]runnerJSON, len(clientIDs))
	for _, id := range clientIDs {
		out[id] = runnerJSON{ID: id, State: runnerUnknown}
	}
	if len(clientIDs) == 0 {
		return out, nil
	}
	rows, err := pool.Query(ctx, `
		SELECT client_id, hostname, pid, started_at, heartbeat_at, stopped_at,
		       extract(epoch FROM now() - heartbeat_at)::float8
		FROM wasso_runner WHERE client_id = ANY($1)`, clientIDs)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable {
			return out, nil
		}
		return nil, fmt.Errorf("look up runners: %w", err)
	}
	var (
		id, hostname  string
		pid           int
		started, beat time.Time
		stopped       *time.Time
		silentSeconds float64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &hostname, &pid, &started, &beat, &stopped, &silentSeconds}, func() error {
		silent := time.Duration(max(silentSeconds, 0) * float64(time.Second))
		alive := stopped == nil && silent < RunnerLostAfter
		r := runnerJSON{ID: id, Alive: &alive, Hostname: hostname, PID: pid, SilentFor: roundDuration(silent).String()}
		r.StartedAt, r.HeartbeatAt = new(started), new(beat)
		if stopped != nil {
			r.StoppedAt = new(*stopped)
		}
		switch {
		case stopped != nil:
			r.State = runnerStopped
		case alive:
			r.State = runnerAlive
		default:
			r.State = runnerLost
		}
		out[id] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up runners: %w", err)
	}
	return out, nil
}

// describe is the RUNNER STATE cell of `inspect active`.
func (r runnerJSON) describe() string {
	switch r.State {
	case runnerLost:
		return "LOST (no heartbeat for " + r.SilentFor + ")"
	case runnerStopped:
		return "stopped"
	default:
		return r.State
	}
}

// RescueLostInterval is how often the leader looks for running jobs of
// lost runners (see lostRunnerRescuer).
const RescueLostInterval = RunnerHeartbeatInterval

// lostRunnerRescuer is a leader loop (a River hook, like the schedule
// loop) that makes the running jobs of a runner whose heartbeat stopped
// RunnerLostAfter ago, or that stopped with them running, available again
// every RescueLostInterval: a runner killed with SIGKILL gives its jobs
// back within about RunnerLostAfter plus RescueLostInterval, where River's
// own rescuer waits run.rescue_after (two minutes by default), which stays
// the backstop for jobs of clients without heartbeats. A runner that is
// slow but alive keeps heartbeating, from a goroutine of its own, and its
// jobs are never touched.
type lostRunnerRescuer struct {
	river.HookDefaults

	a    *app
	pool *pgxpool.Pool
	loop leaderloop.Loop
	// rescued, if set, counts the jobs each pass rescued (the metrics'
	// wasso_lost_runner_jobs_rescued_total). Set before the client starts.
	rescued prometheus.Counter
}

func (r *lostRunnerRescuer) Start(ctx context.Context, _ *rivertype.HookPeriodicJobsStartParams) error {
	r.loop.Start(ctx, r.run)
	return nil
}

// Wait returns once the loop has returned, or when ctx is done.
func (r *lostRunnerRescuer) Wait(ctx context.Context) error {
	return r.loop.Wait(ctx, "lost runners' rescuer")
}

func (r *lostRunnerRescuer) run(ctx context.Context) {
	// The first pass runs at once: a runner elected because the leader
	// died may find the dead leader's jobs waiting.
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(RescueLostInterval)
		jobs, err := r.a.rescueLost(ctx, r.pool)
		if err != nil {
			if ctx.Err() == nil {
				r.a.logger.Warn("rescuing the jobs of lost runners failed", slog.String("error", r.a.redact.redact(err.Error())))
			}
			continue
		}
		if r.rescued != nil {
			r.rescued.Add(float64(len(jobs)))
		}
		for _, j := range jobs {
			if j.abandoned {
				r.a.logger.Warn("abandoned job rescued: running in the database, not on its runner", slog.Int64("job_id", j.id), slog.String("kind", j.kind),
					slog.String("state", j.state), slog.String("client_id", j.lostClientID))
				continue
			}
			r.a.logger.Warn("job of a lost runner rescued", slog.Int64("job_id", j.id), slog.String("kind", j.kind),
				slog.String("state", j.state), slog.String("lost_client_id", j.lostClientID))
		}
	}
}
