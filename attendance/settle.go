package attendance

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Attendance statuses, as the Django backend stores them in
// attendances.status.
const (
	StatusUnchecked = 0
	StatusPresent   = 1
	StatusLate      = 2
	StatusAbsent    = 3
)

// LookbackDefault is how far back a sweep looks for deadlines by default.
// Events whose deadline is older are left alone, so that a first deploy on
// a database holding years of history does not rewrite it.
const LookbackDefault = 24 * time.Hour

// BatchSizeDefault is how many events SettleDue settles per transaction.
const BatchSizeDefault = 100

// DB is what the settlement queries run on: a pool, a connection or a
// transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts transactions; *pgxpool.Pool and *pgx.Conn are Beginners.
// Settlements begin theirs with BeginTx, to ask for READ COMMITTED
// whatever the server's default isolation level is.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error)
}

// SettleParams selects the events a settlement works on.
type SettleParams struct {
	// EventIDs restricts the settlement to these events. Nil means every
	// due event. An event in the list that is not due is skipped.
	EventIDs []int64

	// First are events claimed before any other, waiting for a concurrent
	// settlement of them to commit or roll back, as for EventIDs; the
	// settle_event job passes its own event here, so that however busy the
	// burst, its event is never crowded out of its batch. The rest of the
	// batch, up to Limit events in all, is filled with the other due events
	// (within EventIDs, if set) in deadline then id order, skipping those
	// that another settlement is claiming at that moment rather than
	// waiting for it: that settlement settles them, and this one is not
	// held up. Nil claims in event id order and waits, as before.
	First []int64

	// Limit is the most events settled in one transaction. Zero means
	// BatchSizeDefault divided by Parallel (at least 10) for SettleDue,
	// and no limit for SettleDueTx.
	Limit int

	// Parallel is how many batches SettleDue and SettleDueFunc settle at
	// once, each in a transaction of its own on a connection of its own,
	// for a backlog (after an outage, or a sweep that found many events
	// due). Zero means ParallelDefault. Above 1, after the first batch,
	// that many workers claim batches side by side, each skipping the
	// events another holds (earliest deadline first, as a burst does), and
	// a last pass in event id order settles whatever they left; each event
	// still settles atomically, once, in one batch. SettleDueTx ignores it.
	Parallel int

	// Lookback is how old a deadline may be and still be settled. Zero
	// means LookbackDefault.
	Lookback time.Duration

	// Now is the instant deadlines are compared with and the timestamp
	// written to the rows. The zero value means the database clock
	// (statement_timestamp()), which is the same clock River schedules jobs
	// by, so that a job scheduled at a deadline never finds its event not
	// yet due.
	Now time.Time

	// WriterWait bounds how long a settlement of a deadline that passed
	// less than WriterWaitWindow ago waits for the transactions in flight
	// that have written to attendances (a check-in, an organiser's edit)
	// to commit or roll back, so that it settles on top of what they wrote
	// (see WriterWaitDefault). Zero means WriterWaitDefault; a negative
	// value does not wait, leaving such writers to Reconcile.
	WriterWait time.Duration

	// OnBatch, if set, is called after each batch of SettleDue and
	// SettleDueFunc commits, with that batch's counts, for progress
	// reports on a long backlog. With Parallel above 1 the batches commit
	// from several goroutines, but OnBatch is called for one at a time.
	// It runs outside any transaction and must return quickly: a parallel
	// worker waits for it before it records its batch. SettleDueTx
	// ignores it.
	OnBatch func(batch *SettleResult)

	// skipHeld makes a claim without First skip the events another
	// settlement holds, in deadline then id order, instead of waiting for
	// them in id order: the parallel workers of SettleDueFunc.
	skipHeld bool
}

// ParallelDefault is SettleParams.Parallel's default: one batch at a
// time, so that a sweep takes no more than one connection unless asked.
const ParallelDefault = 1

func (p *SettleParams) validate() error {
	for _, id := range p.First {
		if id <= 0 {
			return fmt.Errorf("%w: first event id %d must be positive", ErrInvalidParams, id)
		}
	}
	if p.Parallel < 0 {
		return fmt.Errorf("%w: parallel %d must not be negative", ErrInvalidParams, p.Parallel)
	}
	if p.Limit < 0 {
		return fmt.Errorf("%w: limit %d must not be negative", ErrInvalidParams, p.Limit)
	}
	if p.Lookback < 0 {
		return fmt.Errorf("%w: lookback %s must not be negative", ErrInvalidParams, p.Lookback)
	}
	return nil
}

func (p *SettleParams) writerWait() time.Duration {
	switch {
	case p.WriterWait == 0:
		return WriterWaitDefault
	case p.WriterWait < 0:
		return 0
	}
	return p.WriterWait
}

func (p *SettleParams) lookback() time.Duration {
	if p.Lookback == 0 {
		return LookbackDefault
	}
	return p.Lookback
}

// SettledEvent is what settling one event changed.
type SettledEvent struct {
	// EventID is the settled event.
	EventID int64 `json:"event_id"`
	// Deadline is the deadline the event was settled for.
	Deadline time.Time `json:"deadline"`
	// UpdatedRows counts latest UNCHECKED rows turned ABSENT.
	UpdatedRows int `json:"updated_rows"`
	// CreatedRows counts ABSENT rows inserted for members without one.
	CreatedRows int `json:"created_rows"`
	// AbsentMappingIDs are the generation_mapping ids of the members just
	// marked absent (updated or created), in ascending order.
	AbsentMappingIDs []int64 `json:"absent_mapping_ids"`
	// Anomalies lists what is unusual in the event's data (see Anomaly),
	// found by the settlement statement itself at no extra query.
	Anomalies []Anomaly `json:"anomalies,omitempty"`
}

// SettleResult sums up a settlement.
type SettleResult struct {
	// ProcessedEvents counts the events settled.
	ProcessedEvents int `json:"processed_events"`
	// UpdatedRows counts latest UNCHECKED rows turned ABSENT.
	UpdatedRows int `json:"updated_rows"`
	// CreatedRows counts ABSENT rows inserted.
	CreatedRows int `json:"created_rows"`
	// Events has one entry per settled event, by ascending id.
	Events []SettledEvent `json:"-"`
	// Now is the instant the deadlines were compared with, and the
	// timestamp written to the rows. It is zero when nothing was settled.
	Now time.Time `json:"-"`
	// WaitedWriters counts the transactions in flight on attendances that
	// the settlement waited for (see SettleParams.WriterWait).
	WaitedWriters int `json:"waited_writers,omitempty"`
	// WriterWaitTimeouts counts the settlements that stopped waiting for
	// such a transaction after WriterWait; Reconcile repairs what those
	// writers commit later.
	WriterWaitTimeouts int `json:"writer_wait_timeouts,omitempty"`
}

func (r *SettleResult) add(other *SettleResult) {
	r.ProcessedEvents += other.ProcessedEvents
	r.UpdatedRows += other.UpdatedRows
	r.CreatedRows += other.CreatedRows
	r.Events = append(r.Events, other.Events...)
	r.WaitedWriters += other.WaitedWriters
	r.WriterWaitTimeouts += other.WriterWaitTimeouts
	if r.Now.IsZero() {
		r.Now = other.Now
	}
}

// SettleDueTx settles the due events inside the caller's transaction: the
// latest UNCHECKED row of every roster member becomes ABSENT, every roster
// member without a row gets an ABSENT row, and each event is recorded as
// settled for its current deadline. Nothing is committed; the caller
// commits or rolls back, and whatever else it wrote in tx (follow-up jobs,
// its own rows) commits or rolls back with the settlement.
//
// Concurrent settlements of the same event serialise on the event's
// wasso_settlement row, so however many run at once, each event is settled
// once and no member gets two rows. The transaction must use the READ
// COMMITTED isolation level (Postgres's default): a transaction that waited
// for another settlement must see the rows that one wrote.
func SettleDueTx(ctx context.Context, tx pgx.Tx, params SettleParams) (*SettleResult, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	return settle(ctx, tx, params, params.Limit)
}

// SettleDue settles every due event, BatchSizeDefault (or params.Limit;
// see SettleParams.Limit for parallel batches) events per transaction, each transaction committed before the next
// begins. Each event is settled in exactly one transaction, so a failure
// or a cancelled context leaves every event either fully settled or
// untouched; the result counts the events committed before it.
func SettleDue(ctx context.Context, db Beginner, params SettleParams) (*SettleResult, error) {
	return SettleDueFunc(ctx, db, params, nil)
}

// SettleDueFunc is SettleDue with a callback run inside each batch's
// transaction after the batch is settled and before it commits, for the
// work that must commit with the settlement, such as inserting follow-up
// jobs. An error from it rolls the batch back and is returned. With
// params.Parallel above 1 it is called from several goroutines at once,
// each with its own transaction.
func SettleDueFunc(ctx context.Context, db Beginner, params SettleParams, inTx func(ctx context.Context, tx pgx.Tx, batch *SettleResult) error) (*SettleResult, error) {
	total := &SettleResult{}
	if err := params.validate(); err != nil {
		return total, err
	}
	parallel := params.Parallel
	if parallel == 0 {
		parallel = ParallelDefault
	}
	limit := params.Limit
	if limit == 0 {
		// With batches in flight at once, the batches run alone (the
		// first, and the last of a worker whose peers are done) cost the
		// most: smaller batches keep them short.
		limit = max(BatchSizeDefault/parallel, 10)
	}
	// One batch in event id order first: it fixes the instant every later
	// batch compares deadlines with, and settles a small sweep whole.
	more, err := settleSerially(ctx, db, &params, limit, inTx, total, parallel > 1)
	if err != nil || !more || parallel <= 1 {
		return total, err
	}
	if err := settleInParallel(ctx, db, params, limit, parallel, inTx, total); err != nil {
		return total, err
	}
	// The workers stop at their first empty claim; an event one of them
	// skipped while another held it, or that an emptied claim missed, is
	// settled here, waiting for its holder as a sweep does.
	_, err = settleSerially(ctx, db, &params, limit, inTx, total, false)
	slices.SortFunc(total.Events, func(a, b SettledEvent) int { return cmp.Compare(a.EventID, b.EventID) })
	return total, err
}

// settleSerially settles batch after batch into total until nothing is
// due, or, with once, after the first batch that settled something; it
// says whether events may still be due. params.Now is set to the instant
// of the first batch.
func settleSerially(ctx context.Context, db Beginner, params *SettleParams, limit int, inTx func(ctx context.Context, tx pgx.Tx, batch *SettleResult) error, total *SettleResult, once bool) (bool, error) {
	for {
		var (
			batch *SettleResult
			more  bool
		)
		// READ COMMITTED whatever the server's default: a claim that
		// waited for another settlement must see what that one wrote.
		err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			var err error
			batch, err = settle(ctx, tx, *params, limit)
			if err != nil {
				return err
			}
			if batch.ProcessedEvents == 0 {
				// A claim can come back empty while events are still due:
				// every event it picked was being settled by a transaction
				// that committed while the claim waited for it. Look again
				// with a fresh snapshot before concluding.
				due, err := DueEvents(ctx, tx, SettleParams{EventIDs: params.EventIDs, Limit: 1, Lookback: params.Lookback, Now: params.Now})
				more = len(due) > 0
				return err
			}
			more = true
			if inTx != nil {
				return inTx(ctx, tx, batch)
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		total.add(batch)
		if params.OnBatch != nil && batch.ProcessedEvents > 0 {
			params.OnBatch(batch)
		}
		if !more {
			return false, nil
		}
		if batch.Now.IsZero() {
			continue
		}
		// Every later batch compares deadlines with the instant the first
		// one used, so that events coming due while a long sweep runs are
		// left to the next sweep instead of keeping this one going.
		params.Now = batch.Now
		if once {
			return true, nil
		}
	}
}

// settleOneBatch settles one batch in a transaction of its own for a
// parallel worker. A batch whose statements and inTx completed is
// committed even if the context is cancelled meanwhile (by another
// worker's error), so that the result counts exactly the batches
// committed; a cancellation that lands earlier rolls the batch back.
func settleOneBatch(ctx context.Context, db Beginner, params SettleParams, limit int, inTx func(ctx context.Context, tx pgx.Tx, batch *SettleResult) error) (*SettleResult, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("begin settlement: %w", err)
	}
	batch, err := settle(ctx, tx, params, limit)
	if err == nil && batch.ProcessedEvents > 0 && inTx != nil {
		err = inTx(ctx, tx, batch)
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("commit settlement: %w", err)
	}
	return batch, nil
}

// settleInParallel runs parallel workers, each settling batch after batch
// of the events no other holds, until its claim comes back empty. The
// first error cancels the others, whose transactions then roll back, and
// is returned; the batches committed before it are in total.
func settleInParallel(ctx context.Context, db Beginner, params SettleParams, limit, parallel int, inTx func(ctx context.Context, tx pgx.Tx, batch *SettleResult) error, total *SettleResult) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	params.skipHeld = true
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range parallel {
		wg.Go(func() {
			for ctx.Err() == nil {
				batch, err := settleOneBatch(ctx, db, params, limit, inTx)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					total.add(batch)
					if params.OnBatch != nil && batch.ProcessedEvents > 0 {
						params.OnBatch(batch)
					}
				}
				mu.Unlock()
				if err != nil || batch.ProcessedEvents == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		// The caller's context, cancelled between batches.
		firstErr = ctx.Err()
	}
	return firstErr
}

// DueEvent is an event whose deadline has passed and that is not settled
// for that deadline.
type DueEvent struct {
	EventID      int64     `json:"event_id"`
	Title        string    `json:"title"`
	GenerationID int64     `json:"generation_id"`
	Deadline     time.Time `json:"deadline"`
	// Resettle is true when the event was settled before for another
	// deadline (its start or fail_minutes changed since).
	Resettle bool `json:"resettle"`
}

// DueEvents lists the events a settlement with these params would settle,
// changing nothing.
func DueEvents(ctx context.Context, db DB, params SettleParams) ([]DueEvent, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, dueEventsSQL, customPlan, nullTime(params.Now), params.lookback().Microseconds(), params.EventIDs, nullLimit(params.Limit))
	if err != nil {
		return nil, translate("list due events", err)
	}
	events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DueEvent])
	if err != nil {
		return nil, translate("list due events", err)
	}
	return events, nil
}

// customPlan makes pgx send the settlement queries as unnamed statements,
// which Postgres plans with the actual parameter values every time. pgx
// otherwise prepares and caches them, and after five executions Postgres
// may switch to a generic plan that cannot see that the deadline range is
// narrow: it then reads every event through wasso_deadline instead of
// using wasso_events_deadline_idx, and an idle sweep on a database with
// ten thousand past events costs forty times more. Planning these
// statements takes about a millisecond.
const customPlan = pgx.QueryExecModeExec

// deadlineWindowSQL is the part of a FROM clause, after a relation clock
// with a column now, that selects the events whose current deadline lies
// in (clock.now - lookback, clock.now + ahead], lookback and ahead being
// SQL expressions of microseconds (a parameter such as "$2", or "0"), and
// whose generation is not deleted. events is aliased e; joined, if not
// empty, follows that alias in the FROM clause (a join to events). The
// settlement's due events (ahead 0) and discovery's candidates share it.
// It relies on wasso_events_deadline_idx (an expression index on
// wasso_deadline) for the range, so that its cost grows with the events
// of the window, not with history.
func deadlineWindowSQL(joined, lookback, ahead string) string {
	return `events ` + joined + `
    JOIN club_generation g ON g.id = e.generation_id AND NOT g.is_deleted
    WHERE wasso_deadline(e.start_datetime, e.fail_minutes) > clock.now - make_interval(secs => ` + lookback + `::bigint / 1e6)
      AND wasso_deadline(e.start_datetime, e.fail_minutes) <= clock.now + make_interval(secs => ` + ahead + `::bigint / 1e6)`
}

// dueSQL is the part of a FROM clause, after a relation clock with a
// column now ($1), that selects the due events: the deadline window
// (deadlineWindowSQL) up to now, back $2 microseconds, among the event ids
// $3 (NULL for all), less those settled for their current deadline,
// through wasso_settlement's primary key. dueEventsSQL lists them and
// dueBacklogSQL sums them up.
var dueSQL = deadlineWindowSQL("e LEFT JOIN wasso_settlement s ON s.event_id = e.id", "$2", "0") + `
  AND ($3::bigint[] IS NULL OR e.id = ANY($3::bigint[]))
  AND (s.event_id IS NULL OR s.deadline <> wasso_deadline(e.start_datetime, e.fail_minutes))`

// dueEventsSQL lists the due events (dueSQL).
var dueEventsSQL = `
WITH clock AS (SELECT coalesce($1::timestamptz, statement_timestamp()) AS now)
SELECT e.id, e.title, e.generation_id, wasso_deadline(e.start_datetime, e.fail_minutes), s.event_id IS NOT NULL
FROM clock, ` + dueSQL + `
ORDER BY e.id
LIMIT $4`

// dueBacklogSQL counts the due events (dueSQL) and measures, by the
// database clock, how long ago the oldest of their deadlines passed.
var dueBacklogSQL = `
WITH clock AS (SELECT coalesce($1::timestamptz, statement_timestamp()) AS now)
SELECT count(*), coalesce(extract(epoch FROM max(clock.now) - min(wasso_deadline(e.start_datetime, e.fail_minutes))), 0)::float8
FROM clock, ` + dueSQL

// Backlog sums up the events a settlement has yet to settle.
type Backlog struct {
	// Events is how many events are due and not settled for their
	// current deadline: what DueEvents would list.
	Events int64
	// Oldest is how long ago the earliest of their deadlines passed,
	// by the database clock; zero when Events is zero.
	Oldest time.Duration
}

// DueBacklog sums up the events a settlement with these params would
// settle, changing nothing: how many, and how far behind their deadline
// the oldest is. With exact deadlines each event is settled within a
// moment of its deadline, so a backlog that stays means settlement is
// falling behind or stopped. It reads what DueEvents reads, through the
// same index; params.Limit is ignored.
func DueBacklog(ctx context.Context, db DB, params SettleParams) (Backlog, error) {
	if err := params.validate(); err != nil {
		return Backlog{}, err
	}
	var (
		b      Backlog
		oldest float64
	)
	err := db.QueryRow(ctx, dueBacklogSQL, customPlan, nullTime(params.Now), params.lookback().Microseconds(), params.EventIDs).Scan(&b.Events, &oldest)
	if err != nil {
		return Backlog{}, translate("sum up due events", err)
	}
	b.Oldest = time.Duration(max(oldest, 0) * float64(time.Second))
	return b, nil
}

// claimSQL records the due events as settled for their current deadline
// and returns those it claimed. INSERT ... ON CONFLICT takes the row lock
// of an event already recorded, and waits for a concurrent claim of the
// same event to commit or roll back; the WHERE clause is then evaluated on
// the row as that claim left it, so an event claimed by another sweep
// meanwhile is not returned here.
//
// Before claiming an event, a claim takes a transaction-level advisory
// lock on it, and every claim does, so the
// transaction that holds an event's wasso_settlement row lock always holds
// its advisory lock too: a claim waits, if at all, on the advisory lock,
// never on a row lock taken by a claim that does not hold it. It comes in
// two modes, $5:
//
//   - false ("wait"): events in id order, each lock waited for. This is
//     the sweep's claim and that of a job's own event. Two such claims
//     take their locks in the same order and never wait for each other in
//     a cycle; the wait on an event that another settlement is claiming
//     ends when that one commits, and the ON CONFLICT clause then sees its
//     row.
//   - true ("skip"): the burst's claim of the other due events of a
//     settle_event job, in deadline then id order, skipping (with
//     pg_try_advisory_xact_lock) the events another settlement holds. It
//     never waits, so a job that holds its own event and some others can
//     not be part of a cycle either.
//
// The locks are taken in the locked CTE, which reads the ordered
// candidates and stops at the limit, so no event past the limit is
// locked. Each lock is an entry of Postgres's shared lock table until the
// transaction ends, which holds max_locks_per_transaction x
// (max_connections + max_prepared_transactions) entries, 6,400 with the
// defaults: batches of hundreds of events (BatchSizeDefault,
// BurstLimitDefault) use a few percent of it, but a SettleDueTx without a
// Limit over a backlog of thousands of events could fill it ("out of
// shared memory"), so callers settling backlogs should keep a Limit.
//
// Advisory locks are shared by every schema of the database, so the
// 64-bit key is made of the oid of this schema's wasso_settlement table
// (lock_class, upper 31 bits) and the event id (lower 32): events of two
// deployments, or of two tests, in one database never share a lock. The
// 64-bit form also keeps them apart from the two-part settlement marker
// (settlementLockClass, objsubid 2) that waitForWriters and its observers
// look for. River's advisory locks use hashed 64-bit keys, which one of
// these could match only by a chance of the order of 2^-32, and would
// then cost a wait, not a wrong result.
//
// The candidates come from the statement's snapshot: an event settled by
// a claim that committed after it is skipped by ON CONFLICT, its lock
// having been free.
var claimSQL = `
WITH clock AS (SELECT coalesce($1::timestamptz, statement_timestamp()) AS now),
due AS MATERIALIZED (
    SELECT e.id, wasso_deadline(e.start_datetime, e.fail_minutes) AS deadline
    FROM clock, ` + deadlineWindowSQL("e", "$2", "0") + `
      AND ($3::bigint[] IS NULL OR e.id = ANY($3::bigint[]))
      AND NOT EXISTS (
          SELECT 1 FROM wasso_settlement s
          WHERE s.event_id = e.id AND s.deadline = wasso_deadline(e.start_datetime, e.fail_minutes)
      )
    ORDER BY CASE WHEN $5::boolean THEN wasso_deadline(e.start_datetime, e.fail_minutes) END, e.id
    LIMIT CASE WHEN $5::boolean THEN NULL ELSE $4::bigint END
),
lock_class AS (SELECT ('wasso_settlement'::regclass::oid::bigint & 2147483647) << 32 AS k),
locked AS MATERIALIZED (
    SELECT due.id, due.deadline
    FROM due, lock_class
    WHERE CASE WHEN $5::boolean
               THEN pg_try_advisory_xact_lock(lock_class.k + due.id % 4294967296)
               ELSE (SELECT true FROM pg_advisory_xact_lock(lock_class.k + due.id % 4294967296))
          END
    LIMIT $4::bigint
)
INSERT INTO wasso_settlement AS s (event_id, deadline, settled_at, updated_rows, created_rows, settle_count)
SELECT locked.id, locked.deadline, clock.now, 0, 0, 1 FROM locked, clock
ORDER BY locked.id
ON CONFLICT (event_id) DO UPDATE
    SET deadline = EXCLUDED.deadline, settled_at = EXCLUDED.settled_at,
        updated_rows = 0, created_rows = 0, settle_count = s.settle_count + 1
    WHERE s.deadline <> EXCLUDED.deadline
RETURNING s.event_id, s.deadline, s.settled_at`

// settleWorkMemSQL gives the settlement's statements the memory to sort a
// batch in, for this transaction only.
const settleWorkMemSQL = `SET LOCAL work_mem = '64MB'`

// applySQL settles the claimed events ($1) at instant $2. It runs as a
// statement of its own after claimSQL, so that its snapshot includes the
// rows written by any settlement of the same event that claimSQL waited
// for. The roster, the latest rows and the anti-join all go through the
// foreign key indexes Django created (attendances_event_id_idx,
// generation_mapping_generation_id_idx); the anti-join for missing rows
// reuses the latest-row set, one hash join instead of an index probe per
// roster member.
const applySQL = `
WITH claimed AS (
    SELECT unnest($1::bigint[]) AS event_id
),
roster AS MATERIALIZED (
    SELECT e.id AS event_id, gm.id AS mapping_id
    FROM claimed c
    JOIN events e ON e.id = c.event_id
    JOIN generation_mapping gm ON gm.generation_id = e.generation_id AND gm.is_current
    JOIN club_member m ON m.id = gm.member_id AND NOT m.is_deleted
),
latest AS MATERIALIZED (
    SELECT DISTINCT ON (a.event_id, a.generation_mapping_id) a.id, a.status, a.event_id, a.generation_mapping_id
    FROM attendances a
    WHERE a.event_id = ANY($1::bigint[])
    ORDER BY a.event_id, a.generation_mapping_id, a.created_at DESC, a.id DESC
),
updated AS (
    UPDATE attendances a
    SET status = 3, is_modified = true, modified_at = $2
    FROM latest l
    JOIN roster r ON r.event_id = l.event_id AND r.mapping_id = l.generation_mapping_id
    -- a.status is checked on the row itself, not only in the snapshot
    -- the latest rows were read from: when an organiser's UPDATE of the
    -- row commits while this statement waits for its row lock, Postgres
    -- evaluates this condition again on the row as that UPDATE left it
    -- (READ COMMITTED), and a status set meanwhile is kept.
    WHERE a.id = l.id AND l.status = 0 AND a.status = 0
    RETURNING a.event_id, a.generation_mapping_id
),
created AS (
    INSERT INTO attendances (status, latitude, longitude, "timestamp", created_at, modified_at,
                             is_modified, created_by_id, event_id, generation_mapping_id, unique_token_id)
    SELECT 3, NULL, NULL, $2, $2, $2, true, NULL, r.event_id, r.mapping_id, NULL
    FROM roster r
    LEFT JOIN latest l ON l.event_id = r.event_id AND l.generation_mapping_id = r.mapping_id
    WHERE l.id IS NULL
    RETURNING event_id, generation_mapping_id
),
absent AS (
    SELECT event_id, generation_mapping_id, true AS was_updated FROM updated
    UNION ALL
    SELECT event_id, generation_mapping_id, false FROM created
),
counts AS (
    SELECT event_id,
           count(*) FILTER (WHERE was_updated) AS updated_rows,
           count(*) FILTER (WHERE NOT was_updated) AS created_rows,
           array_agg(generation_mapping_id ORDER BY generation_mapping_id) AS mapping_ids
    FROM absent
    GROUP BY event_id
),
recorded AS (
    UPDATE wasso_settlement s
    SET updated_rows = coalesce(c.updated_rows, 0), created_rows = coalesce(c.created_rows, 0)
    FROM claimed cl
    LEFT JOIN counts c ON c.event_id = cl.event_id
    WHERE s.event_id = cl.event_id
    RETURNING s.event_id, s.updated_rows, s.created_rows
),
roster_sizes AS (
    SELECT event_id, count(*) AS n FROM roster GROUP BY event_id
),
odd AS (
    SELECT l.event_id, count(*) AS n, array_agg(DISTINCT l.status ORDER BY l.status) AS statuses
    FROM latest l
    JOIN roster r ON r.event_id = l.event_id AND r.mapping_id = l.generation_mapping_id
    WHERE l.status NOT IN (0, 1, 2, 3)
    GROUP BY l.event_id
)
SELECT r.event_id, r.updated_rows, r.created_rows, coalesce(c.mapping_ids, '{}'::bigint[]),
       coalesce(rs.n, 0), e.fail_minutes, coalesce(o.n, 0), coalesce(o.statuses, '{}'::int[])
FROM recorded r
JOIN events e ON e.id = r.event_id
LEFT JOIN counts c ON c.event_id = r.event_id
LEFT JOIN roster_sizes rs ON rs.event_id = r.event_id
LEFT JOIN odd o ON o.event_id = r.event_id
ORDER BY r.event_id`

// claim is an event a claim statement recorded as settled.
type claim struct {
	EventID   int64
	Deadline  time.Time
	SettledAt time.Time
}

func claimDue(ctx context.Context, tx pgx.Tx, now time.Time, lookback time.Duration, eventIDs []int64, limit int, skip bool) ([]claim, error) {
	rows, err := tx.Query(ctx, claimSQL, customPlan, nullTime(now), lookback.Microseconds(), eventIDs, nullLimit(limit), skip)
	if err != nil {
		return nil, translate("claim due events", err)
	}
	claims, err := pgx.CollectRows(rows, pgx.RowToStructByPos[claim])
	if err != nil {
		return nil, translate("claim due events", err)
	}
	return claims, nil
}

func settle(ctx context.Context, tx pgx.Tx, params SettleParams, limit int) (*SettleResult, error) {
	var claims []claim
	if len(params.First) == 0 {
		var err error
		claims, err = claimDue(ctx, tx, params.Now, params.lookback(), params.EventIDs, limit, params.skipHeld)
		if err != nil {
			return nil, err
		}
	} else {
		// The first events alone, waiting for them, while this
		// transaction holds no other claim; then the rest of the batch,
		// skipping what others hold, in a statement of its own so that
		// its snapshot includes what the settlement waited for committed.
		first := params.First
		if params.EventIDs != nil {
			first = intersect(params.First, params.EventIDs)
		}
		var err error
		if len(first) > 0 {
			if claims, err = claimDue(ctx, tx, params.Now, params.lookback(), first, limit, false); err != nil {
				return nil, err
			}
		}
		if rest := limit - len(claims); limit == 0 || rest > 0 {
			now := params.Now
			if len(claims) > 0 {
				// One instant for the whole batch: it is the one written
				// to the rows and to the notices' keys.
				now = claims[0].SettledAt
			}
			more, err := claimDue(ctx, tx, now, params.lookback(), params.EventIDs, max(rest, 0), true)
			if err != nil {
				return nil, err
			}
			claims = append(claims, more...)
		}
	}
	res := &SettleResult{}
	if len(claims) == 0 {
		return res, nil
	}
	ids := make([]int64, len(claims))
	deadlines := make(map[int64]time.Time, len(claims))
	for i, c := range claims {
		ids[i] = c.EventID
		deadlines[c.EventID] = c.Deadline
	}
	// All claims of one statement share its clock.
	now := claims[0].SettledAt
	res.Now = now

	// A deadline that has just passed may still have check-ins and edits
	// in flight, written before it and committed after it. Wait for them
	// before the apply statement takes its snapshot, so that it sees them.
	newest := claims[0].Deadline
	for _, c := range claims[1:] {
		if c.Deadline.After(newest) {
			newest = c.Deadline
		}
	}
	wait := params.writerWait()
	if now.Sub(newest) >= WriterWaitWindow {
		wait = 0
	}
	waited, timedOut, err := waitForWriters(ctx, tx, wait)
	if err != nil {
		return nil, err
	}
	res.WaitedWriters = waited
	if timedOut {
		res.WriterWaitTimeouts = 1
	}

	// The latest row of each member is found by a sort of the batch's
	// attendance rows: about 130,000 rows for 100 events of 1,000
	// members, which Postgres's default work_mem (4MB) sends to disk.
	// The memory is the transaction's alone and freed at its end. One
	// event's rows fit in the default: its settlement, the common case
	// of an exact-deadline job, spares the round trip.
	if len(ids) > 1 {
		if _, err := tx.Exec(ctx, settleWorkMemSQL); err != nil {
			return nil, translate("settle: set work_mem", err)
		}
	}
	rows, err := tx.Query(ctx, applySQL, customPlan, ids, now)
	if err != nil {
		return nil, translate(fmt.Sprintf("settle events %v", ids), err)
	}
	var (
		ev                              SettledEvent
		roster, failMinutes, oddMembers int
		oddStatuses                     []int
	)
	_, err = pgx.ForEachRow(rows, []any{&ev.EventID, &ev.UpdatedRows, &ev.CreatedRows, &ev.AbsentMappingIDs, &roster, &failMinutes, &oddMembers, &oddStatuses}, func() error {
		ev.Deadline = deadlines[ev.EventID]
		ev.Anomalies = anomalies(ev.EventID, roster, failMinutes, oddMembers, oddStatuses)
		res.Events = append(res.Events, ev)
		res.ProcessedEvents++
		res.UpdatedRows += ev.UpdatedRows
		res.CreatedRows += ev.CreatedRows
		ev = SettledEvent{}
		return nil
	})
	if err != nil {
		return nil, translate(fmt.Sprintf("settle events %v", ids), err)
	}
	return res, nil
}

// intersect returns the ids of a that are in b, in a's order.
func intersect(a, b []int64) []int64 {
	var out []int64
	for _, id := range a {
		if slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	return out
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullLimit(limit int) *int {
	if limit == 0 {
		return nil
	}
	return &limit
}

// translate wraps a database error with what was being done, and maps the
// errors callers branch on to typed errors: a missing table or function
// (wasso_deadline) becomes a *SchemaMissingError naming it, which says what
// is missing and leaves what to run about it to the program that called.
func translate(doing string, err error) error {
	if missing, ok := SchemaMissingFrom(err); ok {
		return fmt.Errorf("%s: %w", doing, missing)
	}
	return fmt.Errorf("%s: %w", doing, err)
}
