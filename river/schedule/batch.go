package schedule

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// batchSelect is what a batch transaction takes: the earliest due
// schedules not in exclude, limit at most, or, when names is set, those of
// names still due (a failed batch's, retried in parts). full, if set, is
// called when the select fills the batch: more may be due.
type batchSelect struct {
	exclude []string
	limit   int
	names   []string
	full    func()
}

// batchPlanSQL pins, for the rest of the batch's transaction, the plans
// that keep a batch's cost to its own rows: the select walks
// wasso_schedule_next_run_at_idx in order and stops at the batch's last
// row, and the joins of the batch's arrays with wasso_schedule and
// wasso_schedule_slot (takenSlotsSQL, advanceBatchSQL) look each row up
// by primary key. Left to itself, the planner reads every due row and
// sorts them for each batch when the table has no statistics yet (a bulk
// of schedules just written), and hashes the whole table for a join while
// it is small enough (under some 100,000 rows): costs that grow with the
// table, so that a pass would grow with the square of the schedules due.
// River's statements in the batch (JobListTx, InsertManyTx) neither scan
// nor join.
const batchPlanSQL = `SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off;
SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off`

// dueBatchSQL locks the earliest due schedules, skipping those another
// transaction holds (another loop, a caller's Update in its transaction)
// and those the pass left out. It reads the first entries of
// wasso_schedule_next_run_at_idx in order, so a batch costs its own rows
// however many schedules are due.
const dueBatchSQL = `
SELECT ` + scheduleColumns + ` FROM wasso_schedule
WHERE enabled AND next_run_at <= $1 AND NOT (name = ANY($2))
ORDER BY next_run_at
LIMIT $3
FOR UPDATE SKIP LOCKED`

// dueNamedSQL locks those of the schedules named that are still due,
// through the primary key.
const dueNamedSQL = `
SELECT ` + scheduleColumns + ` FROM wasso_schedule
WHERE enabled AND next_run_at <= $1 AND name = ANY($2)
FOR UPDATE SKIP LOCKED`

// takenSlotsSQL returns those of the (schedule, slot) pairs that already
// have a row in wasso_schedule_slot (a backfill, a run now, or this slot
// enqueued before): their jobs are not enqueued again.
const takenSlotsSQL = `
SELECT ss.schedule_name, ss.slot FROM unnest($1::text[], $2::timestamptz[]) AS u (name, slot)
JOIN wasso_schedule_slot AS ss ON ss.schedule_name = u.name AND ss.slot = u.slot`

// claimBatchSQL records the slots of many schedules with their jobs. Every
// writer of the slot table claims a schedule's slots under its row lock,
// which the batch holds, so none of these slots can have been taken since
// takenSlotsSQL looked; if one was all the same (a row written by hand),
// it is not inserted, the count comes short and the batch rolls back, jobs
// with it.
const claimBatchSQL = `
INSERT INTO wasso_schedule_slot (schedule_name, slot, job_id, source, enqueued_at)
SELECT u.name, u.slot, u.job_id, $4, $5 FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) AS u (name, slot, job_id)
ON CONFLICT (schedule_name, slot) DO NOTHING`

// slotKey is a schedule's slot, to the microsecond.
type slotKey struct {
	name string
	slot int64
}

// advanceBatchSQL is advanceSQL for many schedules: each row moves only
// if its next_run_at is still the one the batch read.
const advanceBatchSQL = `
UPDATE wasso_schedule AS s SET next_run_at = u.next_run_at, enabled = u.enabled,
    last_run_at = coalesce(u.last_run_at, s.last_run_at), last_job_id = coalesce(u.last_job_id, s.last_job_id),
    total_run_count = s.total_run_count + u.runs, skipped_count = s.skipped_count + u.skips,
    missed_count = s.missed_count + u.misses, updated_at = $10,
    buffered_slot = coalesce(u.buffered_slot, s.buffered_slot)
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::boolean[], $5::timestamptz[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::bigint[], $11::timestamptz[])
    AS u (name, old_next_run_at, next_run_at, enabled, last_run_at, last_job_id, runs, skips, misses, buffered_slot)
WHERE s.name = u.name AND s.next_run_at = u.old_next_run_at`

// batchOutcome is what one batch transaction did.
type batchOutcome struct {
	// names are the schedules it selected and locked, in order: a failed
	// batch's are retried (fallback).
	names []string
	// outs are the schedules it advanced.
	outs []*scheduleOutcome
	// failed are the stored schedules it could not read (invalid), left
	// as they were.
	failed []failedSchedule
	// again are the schedules the pass had already handled, left as they
	// were for the next pass.
	again []string
}

type failedSchedule struct {
	name string
	err  error
}

// runBatchTx advances the schedules sel selects, in tx, with a fixed
// number of statements whatever their number: the select, one JobListTx
// for the last jobs of the OverlapSkip ones, one select of the slots
// already taken, one InsertManyTx of every job, one insert claiming their
// slots and one compare-and-set advancing them all. Each schedule's slots
// are planned as runDueTx plans them (planSlots). It returns nil, nil when none is
// selected. Any error fails the batch as a whole, and the outcome, which
// names the schedules selected, is returned with it: the caller rolls the
// transaction back and retries them in smaller transactions. In
// particular, a compare-and-set that misses a row (impossible while the
// rows are locked, kept as a guard) fails the batch before its jobs can
// commit.
func (s *Store) runBatchTx(ctx context.Context, tx pgx.Tx, inserter Inserter, now time.Time, sel batchSelect, seen func(name string) bool) (*batchOutcome, error) {
	var rows pgx.Rows
	var err error
	if _, err := tx.Exec(ctx, batchPlanSQL); err != nil {
		return nil, scheduleErr("find due schedules", err)
	}
	if sel.names != nil {
		rows, err = tx.Query(ctx, dueNamedSQL, now, sel.names)
	} else {
		rows, err = tx.Query(ctx, dueBatchSQL, now, sel.exclude, sel.limit)
	}
	if err != nil {
		return nil, scheduleErr("find due schedules", err)
	}
	scheds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Schedule, error) { return scanSchedule(row) })
	if err != nil {
		return nil, scheduleErr("find due schedules", err)
	}
	if len(scheds) == 0 {
		return nil, nil
	}
	if sel.full != nil && len(scheds) == sel.limit {
		sel.full()
	}

	// Plan each schedule's slots.
	b := &batchOutcome{names: make([]string, len(scheds))}
	type planned struct {
		out *scheduleOutcome
		run []time.Time
	}
	plans := make([]planned, 0, len(scheds))
	var (
		lastJobs []int64
		paused   []*scheduleOutcome // paused after failures: not advanced
	)
	for i, sched := range scheds {
		b.names[i] = sched.Name
		if seen(sched.Name) {
			b.again = append(b.again, sched.Name)
			continue
		}
		out, run, err := s.plan(sched, now)
		if err != nil {
			b.failed = append(b.failed, failedSchedule{sched.Name, err})
			continue
		}
		if len(run) > 0 {
			// PauseAfterFailures: one list of the schedule's last jobs,
			// for the few schedules that set it.
			if out.paused, err = s.pauseForFailures(ctx, tx, inserter, sched, now); err != nil {
				return b, err
			}
			if out.paused != "" {
				paused = append(paused, out)
				continue
			}
		}
		plans = append(plans, planned{out, run})
		if len(run) > 0 && sched.Overlap != OverlapAllow && sched.LastJobID != 0 {
			lastJobs = append(lastJobs, sched.LastJobID)
		}
	}
	b.outs = paused
	if len(plans) == 0 {
		return b, nil
	}

	// The overlap policies: the last jobs that have not finished, all at
	// once.
	if len(lastJobs) > 0 {
		slices.Sort(lastJobs)
		lastJobs = slices.Compact(lastJobs)
		list, err := inserter.JobListTx(ctx, tx,
			river.NewJobListParams().IDs(lastJobs...).States(blockingStates...).First(len(lastJobs)))
		if err != nil {
			return b, scheduleErr(fmt.Sprintf("states of the last jobs of %d schedules", len(lastJobs)), err)
		}
		unfinished := make(map[int64]rivertype.JobState, len(list.Jobs))
		for _, job := range list.Jobs {
			unfinished[job.ID] = job.State
		}
		for i := range plans {
			p := &plans[i]
			sched := p.out.sched
			if len(p.run) == 0 || sched.Overlap == OverlapAllow || sched.LastJobID == 0 {
				continue
			}
			if state, ok := unfinished[sched.LastJobID]; ok && jobBlocks(state) {
				if p.run, err = applyOverlap(ctx, tx, inserter, p.out, p.run, state); err != nil {
					return b, err
				}
			}
		}
	}

	// Claim every slot; enqueue a job for each one claimed.
	var claimNames []string
	var claimSlots []time.Time
	for _, p := range plans {
		for _, slot := range p.run {
			claimNames = append(claimNames, p.out.name)
			claimSlots = append(claimSlots, slot)
		}
	}
	if len(claimNames) > 0 {
		rows, err := tx.Query(ctx, takenSlotsSQL, claimNames, claimSlots)
		if err != nil {
			return b, scheduleErr(fmt.Sprintf("find the slots of %d schedules", len(plans)), err)
		}
		taken := map[slotKey]bool{}
		var name string
		var slot time.Time
		_, err = pgx.ForEachRow(rows, []any{&name, &slot}, func() error {
			taken[slotKey{name, slot.UnixMicro()}] = true
			return nil
		})
		if err != nil {
			return b, scheduleErr(fmt.Sprintf("find the slots of %d schedules", len(plans)), err)
		}
		params := make([]river.InsertManyParams, 0, len(claimNames))
		for i := range plans {
			out := plans[i].out
			for _, slot := range plans[i].run {
				if !taken[slotKey{out.name, slot.UnixMicro()}] {
					out.jobs = append(out.jobs, slotJob{slot: slot.UTC()})
					params = append(params, out.sched.insertParams(slot))
				}
			}
		}
		if len(params) > 0 {
			results, err := inserter.InsertManyTx(ctx, tx, params)
			if err != nil {
				return b, fmt.Errorf("insert the %d jobs of %d schedules: %w", len(params), len(plans), err)
			}
			if len(results) != len(params) {
				return b, fmt.Errorf("insert the %d jobs of %d schedules: River returned %d", len(params), len(plans), len(results))
			}
			// River returns the jobs in the order of params.
			jobNames := make([]string, 0, len(params))
			jobSlots := make([]time.Time, 0, len(params))
			jobIDs := make([]int64, 0, len(params))
			k := 0
			for i := range plans {
				out := plans[i].out
				for j := range out.jobs {
					if results[k].Job.Kind != out.sched.Kind {
						return b, fmt.Errorf("insert the %d jobs of %d schedules: job %d is a %s, not a %s", len(params), len(plans), results[k].Job.ID, results[k].Job.Kind, out.sched.Kind)
					}
					out.jobs[j].jobID = results[k].Job.ID
					jobNames = append(jobNames, out.name)
					jobSlots = append(jobSlots, out.jobs[j].slot)
					jobIDs = append(jobIDs, out.jobs[j].jobID)
					k++
				}
			}
			tag, err := tx.Exec(ctx, claimBatchSQL, jobNames, jobSlots, jobIDs, slotSourceSchedule, now)
			if err != nil {
				return b, scheduleErr(fmt.Sprintf("claim the slots of %d schedules", len(plans)), err)
			}
			if tag.RowsAffected() != int64(len(params)) {
				return b, fmt.Errorf("claim the %d slots of %d schedules: %d claimed: %w", len(params), len(plans), tag.RowsAffected(), errSlotRaced)
			}
		}
	}

	// Advance them all, each with a compare-and-set on its next_run_at.
	n := len(plans)
	var (
		names            = make([]string, n)
		oldNext, newNext = make([]time.Time, n), make([]*time.Time, n)
		enabled          = make([]bool, n)
		lastRun          = make([]*time.Time, n)
		lastJob          = make([]*int64, n)
		runs, skips      = make([]int64, n), make([]int64, n)
		misses           = make([]int64, n)
		buffered         = make([]*time.Time, n)
	)
	for i, p := range plans {
		out := p.out
		a := out.advance()
		names[i], oldNext[i], newNext[i], enabled[i] = out.name, out.sched.NextRunAt, optTime(out.next), a.enabled
		lastRun[i], lastJob[i] = a.lastRun, a.lastJob
		runs[i], skips[i], misses[i] = int64(len(out.jobs)), int64(len(out.skipped)), out.missed
		buffered[i] = optTime(out.buffered)
	}
	tag, err := tx.Exec(ctx, advanceBatchSQL, names, oldNext, newNext, enabled, lastRun, lastJob, runs, skips, misses, now, buffered)
	if err != nil {
		return b, scheduleErr(fmt.Sprintf("advance %d schedules", n), err)
	}
	if tag.RowsAffected() != int64(n) {
		return b, fmt.Errorf("advance %d schedules: %d moved: %w", n, tag.RowsAffected(), errSlotRaced)
	}
	for _, p := range plans {
		b.outs = append(b.outs, p.out)
	}
	return b, nil
}
