package attendance

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// WriterWaitDefault is how long a settlement of a deadline that has just
// passed waits, at most, for the transactions in flight that have written
// to attendances.
//
// The Django check-in view takes its created_at in Python before it
// inserts, and its transaction may commit after the deadline; an
// organiser's edit in the admin updates a row in place. A settlement that
// took its snapshot before such a transaction committed would not see the
// check-in and would insert an ABSENT row above it. So, after claiming its
// events and before reading the attendance rows, a settlement looks up the
// transactions that hold a write lock on attendances (pg_locks, which any
// role may read) and waits until each has ended, polling every
// writerPollInterval; new transactions that start meanwhile are not waited
// for, so a busy table never starves it. The wait costs one query when no
// writer is in flight.
//
// Two seconds covers a web request's transaction with room to spare while
// keeping a settlement within seconds of its deadline. A writer that stays
// open longer, or one that inserts only after the settlement read the rows
// (a created_at taken in Python long before the INSERT), is repaired by
// Reconcile, which every sweep runs; the wait makes the common case right
// at once, and Reconcile makes every case right eventually.
const WriterWaitDefault = 2 * time.Second

// WriterWaitWindow is how recent a deadline must be for its settlement to
// wait for writers in flight. A check-in for an event whose deadline
// passed longer ago is refused by the backend, so a backlog sweep after an
// outage does not wait once per batch for unrelated writers.
const WriterWaitWindow = time.Minute

// writerPollInterval is how often a settlement looks again at the writers
// it waits for.
const writerPollInterval = 5 * time.Millisecond

// Settlement transactions take a shared transaction-level advisory lock on
// this two-part key before they write to attendances, so that they can
// tell each other apart from the backend's writers in pg_locks: settlements
// of other events (the burst at 19:00) do not wait for one another. Shared
// advisory locks never conflict with each other, and River's advisory
// locks use the single 64-bit key form (objsubid 1), never this one
// (objsubid 2). The values spell "wass" and "oset" in ASCII.
const (
	settlementLockClass = 0x77617373
	settlementLockObj   = 0x6f736574
)

// writersSQL marks this transaction as a settlement and, when $3, lists
// the other transactions, settlements excepted, that hold a write lock on
// attendances. pg_locks lists fast-path locks too; a row lock held by a
// writer implies the table-level ROW EXCLUSIVE lock looked for here.
const writersSQL = `
SELECT (SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)) marker),
       CASE WHEN $3::boolean THEN
       (SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}'::text[])
        FROM pg_locks l
        WHERE l.locktype = 'relation'
          AND l.relation = 'attendances'::regclass
          AND l.mode = 'RowExclusiveLock'
          AND l.granted
          AND l.pid <> pg_backend_pid()
          AND NOT EXISTS (
              SELECT 1 FROM pg_locks m
              WHERE m.locktype = 'advisory' AND m.virtualtransaction = l.virtualtransaction
                AND m.classid = $1::int4::oid AND m.objid = $2::int4::oid AND m.objsubid = 2
          ))
       ELSE '{}'::text[] END`

// writersLeftSQL counts how many of the transactions $1 still hold their
// write lock on attendances.
const writersLeftSQL = `
SELECT count(DISTINCT l.virtualtransaction)
FROM pg_locks l
WHERE l.locktype = 'relation'
  AND l.relation = 'attendances'::regclass
  AND l.mode = 'RowExclusiveLock'
  AND l.virtualtransaction = ANY($1::text[])`

// waitForWriters marks tx as a settlement and then waits, at most wait,
// for the transactions that hold a write lock on attendances now to end.
// It returns how many there were and whether some were still in flight
// when it gave up. With wait zero it only marks tx.
func waitForWriters(ctx context.Context, tx pgx.Tx, wait time.Duration) (int, bool, error) {
	var (
		marked  int
		writers []string
	)
	if err := tx.QueryRow(ctx, writersSQL, settlementLockClass, settlementLockObj, wait > 0).Scan(&marked, &writers); err != nil {
		return 0, false, translate("look up writers in flight on attendances", err)
	}
	if len(writers) == 0 {
		return 0, false, nil
	}
	deadline := time.Now().Add(wait)
	ticker := time.NewTicker(writerPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return len(writers), false, fmt.Errorf("wait for %d writers in flight on attendances: %w", len(writers), ctx.Err())
		case <-ticker.C:
		}
		var left int
		if err := tx.QueryRow(ctx, writersLeftSQL, writers).Scan(&left); err != nil {
			return len(writers), false, translate("wait for writers in flight on attendances", err)
		}
		if left == 0 {
			return len(writers), false, nil
		}
		if !time.Now().Before(deadline) {
			return len(writers), true, nil
		}
	}
}
