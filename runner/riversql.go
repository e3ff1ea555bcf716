package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
)

// River's tables, read with SQL.
//
// The runner reads River's tables through the River client's API
// (Client.JobList, JobGet, JobCancel, JobRetry, JobDelete, JobDeleteMany,
// QueueList) wherever River has one. The queries in this file are the ones
// River has no public API for, kept together so that a River upgrade that
// adds one, or changes the tables, has one place to review:
//
//   - countJobs and sweepCounts count jobs;
//   - leader reads the elected leader;
//   - rescueLostSQL makes the jobs of lost runners available again, and
//     lostJobsSQL counts those still waiting for it.
//
// They were written against River v0.51.2 and read only these columns, in
// the configured schema: river_job's queue, kind, state, created_at and
// errors (and, for the jobs of lost runners, attempted_by, attempt,
// max_attempts and metadata); river_leader's leader_id, elected_at and
// expires_at. Only rescueLostSQL writes: river_job's state, scheduled_at,
// finalized_at, errors and metadata, as River's own rescuer
// (JobRescueMany) does.

// jobCount is how many jobs of one kind are in one queue and state.
type jobCount struct {
	queue, kind, state string
	n                  int64
}

// countJobs counts the jobs of the given kinds, queues and states (each
// nil or empty for any) by queue, kind and state. Unfiltered, as the
// /metrics scrape and inspect queues and stats call it, it scans
// river_job: no index serves a count of every row, and River's retention
// of finalized jobs (retention.*) bounds the table. A kind filter uses
// river_job_kind.
//
// River lists jobs (Client.JobList, at most 10,000 a page) but cannot
// count them: counting by listing would fetch every row of river_job,
// arguments and metadata included, where Postgres returns a few dozen
// counts.
func (a *app) countJobs(ctx context.Context, db attendance.DB, kinds, queues []string, states []rivertype.JobState) ([]jobCount, error) {
	var stateNames []string
	for _, s := range states {
		stateNames = append(stateNames, string(s))
	}
	rows, err := db.Query(ctx, `
		SELECT queue, kind, state::text, count(*) FROM `+a.qualify("river_job")+`
		WHERE ($1::text[] IS NULL OR kind = any($1))
		  AND ($2::text[] IS NULL OR queue = any($2))
		  AND ($3::text[] IS NULL OR state::text = any($3))
		GROUP BY queue, kind, state`,
		nilIfEmpty(kinds), nilIfEmpty(queues), nilIfEmpty(stateNames))
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	var (
		out []jobCount
		c   jobCount
	)
	if _, err := pgx.ForEachRow(rows, []any{&c.queue, &c.kind, &c.state, &c.n}, func() error {
		out = append(out, c)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}

// nilIfEmpty makes an empty filter NULL, which countJobs reads as any.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// sweepCounts counts the sweeps created in the last 24 hours: those that
// completed, and those that failed at least one attempt. It uses
// river_job_kind, then reads the few sweeps of a day. River cannot count
// jobs (see countJobs).
func (a *app) sweepCounts(ctx context.Context, db attendance.DB) (completed, failed int64, err error) {
	err = db.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE state = 'completed'),
		       count(*) FILTER (WHERE errors IS NOT NULL)
		FROM `+a.qualify("river_job")+`
		WHERE kind = $1 AND created_at > now() - interval '24 hours'`, attendance.SweepKind).
		Scan(&completed, &failed)
	if err != nil {
		return 0, 0, fmt.Errorf("sweep stats: %w", err)
	}
	return completed, failed, nil
}

// leaderInfo is the elected leader, from river_leader.
type leaderInfo struct {
	ID        string    `json:"id"`
	ElectedAt time.Time `json:"elected_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// leader returns the elected leader, or nil when no runner leads (none
// runs, or the last leader's term expired). river_leader holds one row.
//
// River elects a leader but does not say who it is: the Client has no
// leader accessor and emits no leadership event, and riverdriver's
// LeaderGetElectedLeader is documented as not for user code and outside
// River's semantic versioning.
func (a *app) leader(ctx context.Context, db attendance.DB) (*leaderInfo, error) {
	var l leaderInfo
	err := db.QueryRow(ctx, `SELECT leader_id, elected_at, expires_at FROM `+a.qualify("river_leader")+` WHERE expires_at > now()`).
		Scan(&l.ID, &l.ElectedAt, &l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read leader: %w", err)
	}
	return &l, nil
}

// rescueLostSQL makes the running jobs of lost runners available again:
// jobs whose last attempt is by a River client that wasso_runner records
// and whose heartbeat is older than $1 seconds, or that stopped cleanly
// ($1 is RunnerLostAfter). It does the same for the jobs a live runner
// abandoned: running in the database, attempted by it more than $1
// seconds before its last heartbeat, and not among the jobs that
// heartbeat reports (running_job_ids), as when a primary failover lost
// the commit of their outcome. A job with attempts left becomes available
// at once, keeping its attempt count; one without becomes discarded, as
// River's rescuer leaves it. The attempt's error names the runner, and
// metadata counts the rescue as River's rescuer does (river:rescue_count).
// A job whose last attempt is by a client without a row (a backend's own
// River client) is left to River's rescuer. It reads running jobs through
// the (state, ...) prefix of river_job_prioritized_fetching_index.
//
// River has no call for this: JobRetry leaves running jobs alone, and
// River's rescuer only takes jobs running longer than
// RescueStuckJobsAfter, however dead their client is, since River OSS
// records no client liveness.
const rescueLostSQL = `
UPDATE %[1]s AS j SET
    state = CASE WHEN j.attempt < j.max_attempts THEN 'available' ELSE 'discarded' END::%[2]s,
    scheduled_at = now(),
    finalized_at = CASE WHEN j.attempt < j.max_attempts THEN NULL ELSE now() END,
    errors = array_append(j.errors, jsonb_build_object(
        'at', now(), 'attempt', j.attempt, 'trace', '',
        'error', CASE
            WHEN r.stopped_at IS NOT NULL
            THEN 'Job of a stopped runner rescued: ' || r.client_id || ' (' || r.hostname || ', pid ' || r.pid || ') stopped with it running'
            WHEN r.heartbeat_at < now() - make_interval(secs => $1)
            THEN 'Job of a lost runner rescued: no heartbeat from ' || r.client_id || ' (' || r.hostname || ', pid ' || r.pid || ') for ' || floor(extract(epoch FROM now() - r.heartbeat_at)) || 's'
            ELSE 'Abandoned job rescued: running since ' || j.attempted_at || ' but not among the jobs ' || r.client_id || ' (' || r.hostname || ', pid ' || r.pid || ') reports working; its outcome was lost' END)),
    metadata = j.metadata || jsonb_build_object('river:rescue_count',
        coalesce(CASE WHEN jsonb_typeof(j.metadata -> 'river:rescue_count') = 'number' THEN (j.metadata ->> 'river:rescue_count')::int END, 0) + 1)
FROM wasso_runner AS r
WHERE ` + lostJobsWhereSQL + `
RETURNING j.id, j.kind, j.state::text, r.client_id,
    r.stopped_at IS NULL AND r.heartbeat_at >= now() - make_interval(secs => $1)`

// lostJobsWhereSQL selects, for a river_job j and a wasso_runner r, the
// running jobs whose last attempt is by a lost runner (heartbeat older
// than $1 seconds) or one that stopped, and those a live runner
// abandoned (attempted more than $1 seconds before its last heartbeat,
// which does not report them): the jobs rescueLostSQL takes and
// lostJobsSQL counts.
const lostJobsWhereSQL = `j.state = 'running'
  AND r.client_id = j.attempted_by[array_upper(j.attempted_by, 1)]
  AND (r.stopped_at IS NOT NULL
       OR r.heartbeat_at < now() - make_interval(secs => $1)
       OR (r.running_job_ids IS NOT NULL AND NOT (j.id = ANY (r.running_job_ids))
           AND j.attempted_at < r.heartbeat_at - make_interval(secs => $1)))`

// lostJobsSQL counts the running jobs of lost runners, those the next
// pass of rescueLostSQL will take ($1 is RunnerLostAfter), for /metrics.
// It reads running jobs through the (state, ...) prefix of
// river_job_prioritized_fetching_index, as rescueLostSQL does.
const lostJobsSQL = `SELECT count(*) FROM %[1]s AS j, wasso_runner AS r WHERE ` + lostJobsWhereSQL

// rescuedJob is a job rescueLost made available (or discarded).
type rescuedJob struct {
	id           int64
	kind, state  string
	lostClientID string
	// abandoned: the runner is alive but does not report the job.
	abandoned bool
}

// rescueLost runs rescueLostSQL once.
func (a *app) rescueLost(ctx context.Context, db attendance.DB) ([]rescuedJob, error) {
	rows, err := db.Query(ctx, fmt.Sprintf(rescueLostSQL, a.qualify("river_job"), a.qualify("river_job_state")), RunnerLostAfter.Seconds())
	if err != nil {
		return nil, fmt.Errorf("rescue the jobs of lost runners: %w", err)
	}
	var out []rescuedJob
	var j rescuedJob
	_, err = pgx.ForEachRow(rows, []any{&j.id, &j.kind, &j.state, &j.lostClientID, &j.abandoned}, func() error {
		out = append(out, j)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rescue the jobs of lost runners: %w", err)
	}
	return out, nil
}

// countLostJobs runs lostJobsSQL.
func (a *app) countLostJobs(ctx context.Context, db attendance.DB) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, fmt.Sprintf(lostJobsSQL, a.qualify("river_job")), RunnerLostAfter.Seconds()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the jobs of lost runners: %w", err)
	}
	return n, nil
}
