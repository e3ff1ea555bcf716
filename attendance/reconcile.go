package attendance

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Repair is one member whose check-in a settlement had buried and that
// Reconcile restored.
type Repair struct {
	EventID   int64 `json:"event_id"`
	MappingID int64 `json:"generation_mapping_id"`
	// StillAbsent is true when the member's own row was UNCHECKED and was
	// therefore marked ABSENT in its turn, as the settlement would have
	// done had it seen the row.
	StillAbsent bool `json:"still_absent"`
}

// ReconcileResult sums up a reconciliation.
type ReconcileResult struct {
	// CheckedEvents counts the settled events looked at.
	CheckedEvents int `json:"checked_events"`
	// RepairedRows counts the ABSENT rows removed because a row the
	// backend wrote was found under them.
	RepairedRows int `json:"repaired_rows"`
	// Repairs lists them, by event and member.
	Repairs []Repair `json:"repairs,omitempty"`
}

// Reconcile repairs what a concurrent writer and a settlement got wrong
// together, in events settled within params.Lookback (LookbackDefault when
// zero) of params.Now (the database clock when zero), or only in
// params.EventIDs when set. The sweep worker runs it after every sweep.
//
// A settlement inserts an ABSENT row only for a member it saw no row for.
// If the backend's transaction inserting that member's check-in (its
// created_at taken before the deadline) was still open when the settlement
// read the rows, and stayed open past the settlement's wait for writers
// (SettleParams.WriterWait), the member ends with two rows, the
// settlement's ABSENT row being the later and so the member's status. Such
// a member is recognised afterwards: the settlement's row (status ABSENT,
// no creator, created_at equal to the settlement's instant recorded in
// wasso_settlement) is the member's latest row and another row exists
// beside it. Reconcile deletes the settlement's row, so that the backend's
// row is the member's latest again, and marks that row ABSENT if it is
// UNCHECKED, as the settlement would have done had it seen it. A row the
// settlement inserted and an organiser edited since (its status changed)
// is left alone.
//
// Finding nothing costs one read of the attendance rows of the events
// settled within the window, through attendances_event_id_idx. Each event
// with something to repair is repaired in one transaction that first locks
// its wasso_settlement row, so a repair never interleaves with a
// settlement of the same event.
func Reconcile(ctx context.Context, db Beginner, params SettleParams) (*ReconcileResult, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	res := &ReconcileResult{}
	var candidates []int64
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		res.CheckedEvents, candidates, err = reconcileCandidates(ctx, tx, params)
		return err
	})
	if err != nil {
		return res, err
	}
	for _, id := range candidates {
		var repairs []Repair
		err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			var err error
			repairs, err = repair(ctx, tx, []int64{id}, params.Now)
			return err
		})
		if err != nil {
			return res, err
		}
		res.RepairedRows += len(repairs)
		res.Repairs = append(res.Repairs, repairs...)
	}
	return res, nil
}

// ReconcileTx is Reconcile inside the caller's transaction, which must use
// the READ COMMITTED isolation level. Nothing is committed; the caller
// commits or rolls back.
func ReconcileTx(ctx context.Context, tx pgx.Tx, params SettleParams) (*ReconcileResult, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	res := &ReconcileResult{}
	var (
		candidates []int64
		err        error
	)
	res.CheckedEvents, candidates, err = reconcileCandidates(ctx, tx, params)
	if err != nil || len(candidates) == 0 {
		return res, err
	}
	res.Repairs, err = repair(ctx, tx, candidates, params.Now)
	res.RepairedRows = len(res.Repairs)
	return res, err
}

// reconcileCandidatesSQL lists the events settled within the window
// ($1 now, $2 lookback in microseconds, $3 optional event ids) that have a
// member with two rows or more, one of them the settlement's. It reads the
// rows of those events once, through wasso_settlement_settled_at_idx and
// attendances_event_id_idx, and aggregates them in memory.
const reconcileCandidatesSQL = `
WITH clock AS (SELECT coalesce($1::timestamptz, statement_timestamp()) AS now),
recent AS (
    SELECT s.event_id, s.settled_at
    FROM clock, wasso_settlement s
    WHERE s.settled_at > clock.now - make_interval(secs => $2::bigint / 1e6)
      AND ($3::bigint[] IS NULL OR s.event_id = ANY($3::bigint[]))
),
members AS (
    SELECT a.event_id,
           count(*) AS n,
           bool_or(a.created_at = r.settled_at AND a.status = 3 AND a.created_by_id IS NULL) AS has_settled
    FROM recent r
    JOIN attendances a ON a.event_id = r.event_id
    GROUP BY a.event_id, a.generation_mapping_id
)
SELECT (SELECT count(*) FROM recent),
       coalesce((SELECT array_agg(DISTINCT m.event_id ORDER BY m.event_id) FROM members m WHERE m.n > 1 AND m.has_settled), '{}'::bigint[])`

func reconcileCandidates(ctx context.Context, tx pgx.Tx, params SettleParams) (int, []int64, error) {
	var (
		checked int
		ids     []int64
	)
	err := tx.QueryRow(ctx, reconcileCandidatesSQL, customPlan, nullTime(params.Now), params.lookback().Microseconds(), params.EventIDs).Scan(&checked, &ids)
	if err != nil {
		return 0, nil, translate("find settlements to reconcile", err)
	}
	return checked, ids, nil
}

// lockSettlementsSQL locks the wasso_settlement rows of the events to
// repair, in event id order as claimSQL does, so that a repair and a
// settlement of the same event run one after the other and never wait for
// each other in a cycle.
const lockSettlementsSQL = `
SELECT s.event_id FROM wasso_settlement s
WHERE s.event_id = ANY($1::bigint[])
ORDER BY s.event_id
FOR UPDATE`

// repairSQL repairs the events $1 at instant $2 (the database clock when
// null). It runs after lockSettlementsSQL, in a snapshot of its own that
// includes every writer committed so far. The DELETE and UPDATE check the
// row itself again (status, creator, created_at), so that a row an
// organiser changed while this statement waited for its lock is left as
// the organiser left it.
const repairSQL = `
WITH clock AS (SELECT coalesce($2::timestamptz, statement_timestamp()) AS now),
settled AS (
    SELECT s.event_id, s.settled_at FROM wasso_settlement s WHERE s.event_id = ANY($1::bigint[])
),
ranked AS MATERIALIZED (
    SELECT a.id, a.event_id, a.generation_mapping_id, a.status, a.created_at, a.created_by_id,
           row_number() OVER (PARTITION BY a.event_id, a.generation_mapping_id ORDER BY a.created_at DESC, a.id DESC) AS rn
    FROM attendances a
    WHERE a.event_id = ANY($1::bigint[])
),
buried AS (
    SELECT o.id AS settled_id, o.event_id, o.generation_mapping_id, o.created_at, p.id AS own_id
    FROM ranked o
    JOIN settled s ON s.event_id = o.event_id AND o.created_at = s.settled_at
    JOIN ranked p ON p.event_id = o.event_id AND p.generation_mapping_id = o.generation_mapping_id AND p.rn = 2
    WHERE o.rn = 1 AND o.status = 3 AND o.created_by_id IS NULL
),
deleted AS (
    DELETE FROM attendances a
    USING buried b
    WHERE a.id = b.settled_id AND a.status = 3 AND a.created_by_id IS NULL AND a.created_at = b.created_at
    RETURNING a.id, a.event_id, a.generation_mapping_id
),
absent AS (
    UPDATE attendances a
    SET status = 3, is_modified = true, modified_at = clock.now
    FROM clock, buried b
    JOIN deleted d ON d.id = b.settled_id
    WHERE a.id = b.own_id AND a.status = 0
    RETURNING a.event_id, a.generation_mapping_id
)
SELECT d.event_id, d.generation_mapping_id, x.event_id IS NOT NULL
FROM deleted d
LEFT JOIN absent x ON x.event_id = d.event_id AND x.generation_mapping_id = d.generation_mapping_id
ORDER BY 1, 2`

func repair(ctx context.Context, tx pgx.Tx, eventIDs []int64, now time.Time) ([]Repair, error) {
	if _, err := tx.Exec(ctx, lockSettlementsSQL, customPlan, eventIDs); err != nil {
		return nil, translate(fmt.Sprintf("lock settlements of events %v", eventIDs), err)
	}
	rows, err := tx.Query(ctx, repairSQL, customPlan, eventIDs, nullTime(now))
	if err != nil {
		return nil, translate(fmt.Sprintf("reconcile events %v", eventIDs), err)
	}
	repairs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Repair])
	if err != nil {
		return nil, translate(fmt.Sprintf("reconcile events %v", eventIDs), err)
	}
	return repairs, nil
}

// PruneResult counts the bookkeeping rows Prune deleted.
type PruneResult struct {
	Settlements int `json:"settlements"`
	Plans       int `json:"plans"`
}

// pruneSQL deletes the wasso_settlement and wasso_deadline_plan rows of
// events deleted since, or settled or planned for a deadline older than
// the lookback ($2, in microseconds, before $1). Such rows can never
// matter again: a sweep and the deadline discovery only look at deadlines
// inside the lookback, and a deadline that moves back into it differs
// from the recorded one anyway. Both tables hold about the events of one
// lookback once pruned, so reading them whole each sweep stays cheap.
const pruneSQL = `
WITH clock AS (SELECT coalesce($1::timestamptz, statement_timestamp()) AS now),
settlements AS (
    DELETE FROM wasso_settlement s
    USING clock
    WHERE s.deadline < clock.now - make_interval(secs => $2::bigint / 1e6)
       OR NOT EXISTS (SELECT 1 FROM events e WHERE e.id = s.event_id)
    RETURNING 1
),
plans AS (
    DELETE FROM wasso_deadline_plan p
    USING clock
    WHERE p.deadline < clock.now - make_interval(secs => $2::bigint / 1e6)
       OR NOT EXISTS (SELECT 1 FROM events e WHERE e.id = p.event_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM settlements), (SELECT count(*) FROM plans)`

// Prune deletes the bookkeeping of events deleted since or whose deadline
// is older than params.Lookback (LookbackDefault when zero), so that
// wasso_settlement and wasso_deadline_plan hold about one lookback of
// events however long the scheduler runs. The sweep worker runs it after
// every sweep.
func Prune(ctx context.Context, db Beginner, params SettleParams) (*PruneResult, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	res := &PruneResult{}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, pruneSQL, customPlan, nullTime(params.Now), params.lookback().Microseconds()).Scan(&res.Settlements, &res.Plans)
	})
	if err != nil {
		return nil, translate("prune settlement bookkeeping", err)
	}
	return res, nil
}
