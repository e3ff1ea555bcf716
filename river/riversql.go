package wassoriver

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wasso/scheduler/attendance"
)

// River's tables and channels, touched with SQL.
//
// This package uses River through its client's API wherever River has one
// (inserts, hooks, queues, leader election). The statements in this file
// are the ones River has no public API for, kept together so that a River
// upgrade has one place to review:
//
//   - passSQL makes the scheduled jobs of attendance.QueueExact available
//     ahead of their instants.
//   - wakeExactSQL wakes the producers of attendance.QueueExact.
//
// They were written against River riverSQLWrittenFor and rely on:
//
//   - river_job's columns id, queue, state and scheduled_at, and the
//     river_job_state values 'available' and 'scheduled';
//   - the (state, queue, ...) prefix of river_job_prioritized_fetching_index;
//   - River's insert notification: channel "<schema>.river_insert",
//     payload {"queue": <queue>}, which every producer of the queue listens
//     for and answers with a fetch;
//   - River's fetch (riverpgxv5's JobGetAvailable) taking a job only once
//     state = 'available' and scheduled_at <= now(), so that a job made
//     available ahead of its scheduled_at still waits for that instant;
//   - River's job scheduler moving only scheduled and retryable jobs, so
//     that it leaves a job made available ahead alone;
//   - the unique states of every unique job including both 'available'
//     and 'scheduled' (requiredV3states in River's insert_opts.go), so that
//     moving a job from one to the other cannot collide with another job's
//     unique key.
//
// riversql_test.go checks the first three against a migrated database and
// fails once go.mod requires another River than riverSQLWrittenFor; the
// last three are River's code, to be read in the new version before
// riverSQLWrittenFor is moved to it.

// riverSQLWrittenFor is the River release the statements of this file
// were written against and checked with.
const riverSQLWrittenFor = "v0.51.2"

// riverTable returns River's table name, schema-qualified when
// riverSchema is set (empty means search_path).
func riverTable(riverSchema, name string) string {
	if riverSchema == "" {
		return name
	}
	return pgx.Identifier{riverSchema, name}.Sanitize()
}

// passSQL is the first statement of each discovery pass. It makes the
// QueueExact jobs ($1) due within $2 microseconds available, keeping their
// scheduled_at.
//
// River's public API has no call that makes a scheduled job available
// before its scheduled_at: JobRetry also moves a future scheduled_at to
// now, which would start the job early, and River's job scheduler, the
// only code that promotes scheduled jobs, runs every five seconds on the
// leader with an interval a client cannot set. The statement does what
// River's executor does for short snoozes: state 'available', scheduled_at
// kept, so that River's fetch starts each job at its instant while River's
// scheduler, which looks only at scheduled and retryable jobs, leaves it
// alone; a job the pass misses (no leader) is still made available by
// River's scheduler. It reads the queue's scheduled jobs through the
// (state, queue, ...) prefix of river_job_prioritized_fetching_index.
//
// It skips the rows another transaction holds (SKIP LOCKED): River's own
// scheduler may be promoting some of them, and a pass that waited for it
// would wake no one until it returned.
//
// It returns the count, the instants of the queue's jobs due within $2 or
// less than a second ago that wait, scheduled or available (those skipped
// too, so that their producers are woken once River has made them
// available; those just due, so that a job made available late is woken
// at once rather than at the next poll), the database's clock, and
// whether any event needs a job (attendance.DiscoveryPendingSQL, with the
// lookback $3 and the horizon $4), all in one round trip.
func passSQL(riverSchema string) string {
	table := riverTable(riverSchema, "river_job")
	return `WITH promoted AS (
    UPDATE ` + table + `
    SET state = 'available'
    WHERE id IN (
        SELECT id FROM ` + table + `
        WHERE queue = $1
          AND state = 'scheduled'
          AND scheduled_at <= now() + make_interval(secs => $2::bigint / 1e6)
        FOR UPDATE SKIP LOCKED)
    RETURNING scheduled_at
),
waiting AS (
    SELECT scheduled_at FROM ` + table + `
    WHERE queue = $1
      AND state IN ('available', 'scheduled')
      AND scheduled_at > now() - interval '1 second'
      AND scheduled_at <= now() + make_interval(secs => $2::bigint / 1e6)
)
SELECT (SELECT count(*) FROM promoted),
       coalesce((SELECT array_agg(DISTINCT date_trunc('milliseconds', scheduled_at) ORDER BY date_trunc('milliseconds', scheduled_at)) FROM waiting), '{}'),
       clock_timestamp(),
       ` + attendance.DiscoveryPendingSQL(3, 4)
}

// passCheck is what the first statement of a discovery pass found.
type passCheck struct {
	promoted int64 // QueueExact jobs it made available
	// instants are those of the jobs waiting, on the database's clock, to
	// the millisecond.
	instants []time.Time
	offset   time.Duration // the database's clock minus this process's
	pending  bool          // some event needs a job
}

// firstStatement runs sql, passSQL's text, on db as a statement of its
// own.
func firstStatement(ctx context.Context, db attendance.DB, sql string, ahead, lookback, horizon time.Duration) (passCheck, error) {
	var (
		c     passCheck
		dbNow time.Time
	)
	// QueryExecModeExec, for the reason attendance.DiscoverTx gives: the
	// window is planned with its actual bounds on every pass, never with
	// a generic plan that reads every event.
	err := db.QueryRow(ctx, sql, pgx.QueryExecModeExec, attendance.QueueExact, ahead.Microseconds(), lookback.Microseconds(), horizon.Microseconds()).
		Scan(&c.promoted, &c.instants, &dbNow, &c.pending)
	if err != nil {
		if missing, ok := attendance.SchemaMissingFrom(err); ok {
			err = missing
		}
		return passCheck{}, fmt.Errorf("make exact jobs available: %w", err)
	}
	// clock_timestamp() is read as the statement returns its row, which
	// may be long after it started (an UPDATE of a thousand jobs): the
	// offset is taken against the moment the row arrives, which errs
	// late by the network's one-way delay, never early.
	c.offset = dbNow.Sub(time.Now())
	return c, nil
}

// wakeExactSQL sends the notification River's client sends when it
// inserts an available job ($1 the schema of River's tables, empty for the
// current schema; $2 the queue): every producer of the queue that listens
// fetches at once. It is River's PGNotifyMany with topic river_insert and
// payload {"queue": ...}.
//
// River has no public call that wakes a queue's producers: its client
// sends this notification only from an insert, and the jobs the
// Discoverer wakes for were inserted or promoted seconds before their
// instants, when a fetch would not yet take them.
const wakeExactSQL = `SELECT pg_notify(concat(coalesce(nullif($1::text, ''), current_schema()), '.river_insert'), json_build_object('queue', $2::text)::text)`

// wakeExact wakes the producers of queue with wakeExactSQL.
func wakeExact(ctx context.Context, db attendance.DB, riverSchema, queue string) error {
	_, err := db.Exec(ctx, wakeExactSQL, riverSchema, queue)
	return err
}
