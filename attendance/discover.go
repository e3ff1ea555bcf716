package attendance

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// Defaults of DiscoverParams.
const (
	// DiscoveryHorizonDefault is how far ahead discovery schedules
	// deadlines. Jobs inserted this early still start on time when the
	// leader is lost for less than the horizon (another runner works
	// them), while the number of jobs waiting in QueueExact stays the
	// events of the next few minutes.
	DiscoveryHorizonDefault = 10 * time.Minute
	// DiscoveryBatchDefault is how many jobs one discovery transaction
	// inserts at most; a pass runs batches until nothing is left.
	DiscoveryBatchDefault = 500
)

// DiscoverParams selects what one discovery pass looks at.
type DiscoverParams struct {
	// Horizon is how far ahead of now deadlines are scheduled. Zero means
	// DiscoveryHorizonDefault.
	Horizon time.Duration
	// Limit is the most jobs inserted. Zero means DiscoveryBatchDefault.
	Limit int
	// Lookback is how old a deadline may be and still get a job (as for
	// settlement). Zero means LookbackDefault.
	Lookback time.Duration
	// Now is the instant the window is measured from. The zero value
	// means the database clock (statement_timestamp()).
	Now time.Time
}

func (p *DiscoverParams) validate() error {
	if p.Horizon < 0 {
		return fmt.Errorf("%w: horizon %s must not be negative", ErrInvalidParams, p.Horizon)
	}
	if p.Limit < 0 {
		return fmt.Errorf("%w: limit %d must not be negative", ErrInvalidParams, p.Limit)
	}
	if p.Lookback < 0 {
		return fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidParams, p.Lookback)
	}
	return nil
}

// DiscoveredEvent is an event a discovery pass inserted a job for.
type DiscoveredEvent struct {
	EventID  int64     `json:"event_id"`
	Deadline time.Time `json:"deadline"`
}

// DiscoverTx finds, inside the caller's transaction, the events whose
// current deadline lies in the window (now - lookback, now + horizon], is
// neither planned (wasso_deadline_plan) nor settled (wasso_settlement) for
// that deadline, and whose generation is not deleted; it records each as
// planned and inserts its attendance.settle_event job with inserter. The
// jobs commit with the plan rows, or neither does.
//
// The window covers events created or moved by any writer, including the
// Django backend, which neither calls ScheduleEventTx nor reliably bumps
// events.updated_at (QuerySet.update() and raw SQL do not): an event whose
// start_datetime or fail_minutes changed has a deadline that differs from
// its plan, whatever its updated_at says. An event moved later keeps its
// old job, which finds nothing due; the new deadline gets a job of its own.
//
// Two passes at once (a leadership change) serialise on the plan rows: the
// second finds them planned and inserts nothing for them.
func DiscoverTx(ctx context.Context, tx pgx.Tx, inserter Inserter, params DiscoverParams) ([]DiscoveredEvent, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	if inserter == nil {
		return nil, fmt.Errorf("%w: inserter is nil", ErrInvalidParams)
	}
	horizon := params.Horizon
	if horizon == 0 {
		horizon = DiscoveryHorizonDefault
	}
	limit := params.Limit
	if limit == 0 {
		limit = DiscoveryBatchDefault
	}
	lookback := params.Lookback
	if lookback == 0 {
		lookback = LookbackDefault
	}
	// QueryExecModeExec: planned with the actual values on every pass. A
	// cached prepared statement may get a generic plan after five runs,
	// which cannot see that the deadline window is narrow and reads every
	// event instead of a range of wasso_events_deadline_idx; this runs
	// every second on the leader.
	rows, err := tx.Query(ctx, discoverSQL, pgx.QueryExecModeExec, nullTime(params.Now), lookback.Microseconds(), horizon.Microseconds(), limit)
	if err != nil {
		return nil, translate("discover deadlines", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DiscoveredEvent])
	if err != nil {
		return nil, translate("discover deadlines", err)
	}
	if len(found) == 0 {
		return nil, nil
	}
	jobs := make([]river.InsertManyParams, len(found))
	for i := range found {
		found[i].Deadline = found[i].Deadline.UTC()
		jobs[i] = NewSettleEventArgs(found[i].EventID, found[i].Deadline).insertParams()
	}
	if _, err := inserter.InsertManyTx(ctx, tx, jobs); err != nil {
		return nil, fmt.Errorf("discover deadlines: insert %d %s jobs: %w", len(found), SettleEventKind, err)
	}
	return found, nil
}

// discoverSQL plans the events of the window that need a job and returns
// them. The window is a range scan of wasso_events_deadline_idx (the
// expression index on wasso_deadline), so a pass costs the events of the
// lookback and the horizon, not the events table; the anti-joins go
// through the primary keys of wasso_deadline_plan and wasso_settlement.
// INSERT ... ON CONFLICT DO UPDATE ... WHERE returns only the rows this
// statement changed: a row another pass planned for the same deadline
// meanwhile (it waits for that pass's commit) is not returned twice.
//
// A planned event still unsettled ten seconds after its deadline is
// planned again, at most every thirty seconds: its job may have been
// deleted, cancelled or purged by an operator (River UI, wasso-runner
// jobs). Inserting the job again is harmless when it still exists, since
// settle_event jobs are unique by event and deadline; the sweep remains
// the safety net behind both.
var discoverSQL = `
WITH clock AS (SELECT coalesce($1::timestamptz, statement_timestamp()) AS now),
candidates AS (
    SELECT e.id, wasso_deadline(e.start_datetime, e.fail_minutes) AS deadline
    FROM clock, ` + candidatesSQL("$2", "$3") + `
    ORDER BY 2, 1
    LIMIT $4
)
INSERT INTO wasso_deadline_plan AS p (event_id, deadline, planned_at, source)
SELECT c.id, c.deadline, clock.now, 'discovery' FROM candidates c, clock
ORDER BY c.id
ON CONFLICT (event_id) DO UPDATE
    SET deadline = EXCLUDED.deadline, planned_at = EXCLUDED.planned_at, source = EXCLUDED.source
    WHERE p.deadline <> EXCLUDED.deadline OR p.planned_at <= EXCLUDED.planned_at - interval '30 seconds'
RETURNING p.event_id, p.deadline`

// DiscoveryPendingSQL returns an SQL boolean expression that is true when
// some event needs a job: when DiscoverTx, run at this statement's
// statement_timestamp(), would plan one. The parameters numbered
// lookbackParam and horizonParam (3 and 4 for $3 and $4) of the statement
// it is part of hold the lookback and the horizon, in microseconds
// (bigint). It reads what DiscoverTx reads, through the same indexes.
//
// The leader's discovery loop (wassoriver.Discoverer) asks it in the
// statement it runs every interval, beside River's own, so that a pass
// with nothing to plan costs one round trip and no transaction.
func DiscoveryPendingSQL(lookbackParam, horizonParam int) string {
	return `EXISTS (SELECT 1 FROM (SELECT statement_timestamp() AS now) clock, ` +
		candidatesSQL("$"+strconv.Itoa(lookbackParam), "$"+strconv.Itoa(horizonParam)) + `)`
}

// candidatesSQL is the part of a FROM clause, after a relation clock with
// a column now, that selects the events needing a job: those of the
// window, in microseconds before (lookback) and after (horizon) clock.now,
// that are neither planned for their current deadline (or planned long
// enough ago to be planned again) nor settled for it. lookback and horizon
// are the statement's parameters holding them. discoverSQL plans them;
// DiscoveryPendingSQL only asks whether there are any.
func candidatesSQL(lookback, horizon string) string {
	return deadlineWindowSQL("e", lookback, horizon) + `
      AND NOT EXISTS (
          SELECT 1 FROM wasso_deadline_plan p
          WHERE p.event_id = e.id AND p.deadline = wasso_deadline(e.start_datetime, e.fail_minutes)
            AND (p.deadline > clock.now - interval '10 seconds' OR p.planned_at > clock.now - interval '30 seconds')
      )
      AND NOT EXISTS (
          SELECT 1 FROM wasso_settlement s
          WHERE s.event_id = e.id AND s.deadline = wasso_deadline(e.start_datetime, e.fail_minutes)
      )`
}
