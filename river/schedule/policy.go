package schedule

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
)

// The policies beyond skip/allow: jitter, buffer_one, cancel_other and
// pausing after failures. The scheduler's pass calls them; each reads or
// writes jobs through River's API (Inserter), never River's tables.

// jitterDelay is the delay of slot's job under a jitter of up to jitter:
// FNV-1a of the schedule's name and the slot's instant, in whole
// microseconds below jitter. The same slot gets the same delay on every
// runner and every pass, so a slot's job is the same whoever enqueues it.
func jitterDelay(name string, slot time.Time, jitter time.Duration) time.Duration {
	us := jitter.Microseconds()
	if us <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(FormatSlot(slot)))
	return time.Duration(h.Sum64()%uint64(us)) * time.Microsecond
}

// failed says whether a job counts as failed for PauseAfterFailures: it
// was discarded, or its last attempt failed and it waits to be retried.
func failed(state rivertype.JobState) bool {
	return state == rivertype.JobStateDiscarded || state == rivertype.JobStateRetryable
}

// lastJobsFailed looks at the last n jobs the schedule named enqueued
// (by their metadata, newest first) and returns their ids when there are
// n of them and all failed, nil otherwise.
func lastJobsFailed(ctx context.Context, tx pgx.Tx, lister Inserter, name string, n int) ([]int64, error) {
	jobs, err := latestJobs(ctx, tx, lister, name, n)
	if err != nil || len(jobs) < n {
		return nil, err
	}
	ids := make([]int64, 0, n)
	for _, job := range jobs {
		if !failed(job.State) {
			return nil, nil
		}
		ids = append(ids, job.ID)
	}
	return ids, nil
}

// pauseAfterFailuresNote is the note of a schedule paused by
// PauseAfterFailures.
func pauseAfterFailuresNote(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return fmt.Sprintf("paused after its last %d jobs failed (jobs %s); enable it once the cause is fixed", len(ids), strings.Join(parts, ", "))
}

// pauseSQL pauses a schedule the pass found failing: disabled, no next
// run, the note by PausedByScheduler, and no slot left waiting.
const pauseSQL = `
UPDATE wasso_schedule SET enabled = false, next_run_at = NULL, buffered_slot = NULL,
    paused_at = $2, paused_by = $3, paused_note = $4, updated_at = $2
WHERE name = $1`

// pauseForFailures pauses the schedule in tx when its last
// PauseAfterFailures jobs all failed, and returns the note it left ("" when
// it did not pause).
func (s *Store) pauseForFailures(ctx context.Context, tx pgx.Tx, inserter Inserter, sched *Schedule, now time.Time) (string, error) {
	if sched.PauseAfterFailures <= 0 {
		return "", nil
	}
	ids, err := lastJobsFailed(ctx, tx, inserter, sched.Name, sched.PauseAfterFailures)
	if err != nil || ids == nil {
		return "", err
	}
	note := pauseAfterFailuresNote(ids)
	if _, err := tx.Exec(ctx, pauseSQL, sched.Name, truncMicro(now), PausedByScheduler, note); err != nil {
		return "", scheduleErr(fmt.Sprintf("pause schedule %q", sched.Name), err)
	}
	return note, nil
}

// applyOverlap applies the overlap policy of out's schedule to the slots
// run while its last job, in state, has not finished, and returns the
// slots to enqueue now:
//
//   - OverlapSkip: none; every slot is skipped;
//   - OverlapBufferOne: none; the latest slot waits for the job to finish
//     (out.buffered), replacing a slot already waiting, and the others are
//     skipped;
//   - OverlapCancelOther: all of them, after cancelling the job.
func applyOverlap(ctx context.Context, tx pgx.Tx, inserter Inserter, out *scheduleOutcome, run []time.Time, state rivertype.JobState) ([]time.Time, error) {
	sched := out.sched
	out.blocker, out.state = sched.LastJobID, string(state)
	switch sched.Overlap {
	case OverlapBufferOne:
		out.buffered = run[len(run)-1]
		out.skipped = append(out.skipped, run[:len(run)-1]...)
		if !sched.BufferedSlot.IsZero() {
			out.skipped = append([]time.Time{sched.BufferedSlot}, out.skipped...)
		}
		return nil, nil
	case OverlapCancelOther:
		if err := cancelPrevious(ctx, tx, inserter, sched); err != nil {
			return nil, err
		}
		out.canceled = sched.LastJobID
		return run, nil
	default:
		out.skipped = append(out.skipped, run...)
		return nil, nil
	}
}

// cancelPrevious cancels the schedule's last job through River
// (OverlapCancelOther): a job waiting never runs, a running one has its
// context cancelled.
func cancelPrevious(ctx context.Context, tx pgx.Tx, inserter Inserter, sched *Schedule) error {
	if _, err := inserter.JobCancelTx(ctx, tx, sched.LastJobID); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
		return scheduleErr(fmt.Sprintf("schedule %q: cancel job %d", sched.Name, sched.LastJobID), err)
	}
	return nil
}

// bufferedSchedulesSQL takes the schedules with a slot waiting for their
// previous job (OverlapBufferOne), through wasso_schedule_buffered_idx.
const bufferedSchedulesSQL = `
SELECT ` + scheduleColumns + ` FROM wasso_schedule
WHERE buffered_slot IS NOT NULL AND enabled AND NOT (name = ANY($1))
ORDER BY name
FOR UPDATE SKIP LOCKED`

// releaseSQL records the buffered slot's job as the schedule's last run.
const releaseSQL = `
UPDATE wasso_schedule SET buffered_slot = NULL, last_run_at = $2, last_job_id = $3,
    total_run_count = total_run_count + 1, updated_at = $4
WHERE name = $1 AND buffered_slot = $2`

// releasedJob is a buffered slot enqueued by releaseBuffered.
type releasedJob struct {
	sched *Schedule
	job   slotJob
}

// releaseBuffered enqueues, in tx, the buffered slot of every schedule
// whose previous job has finished, and returns them. A schedule whose
// previous job is still unfinished keeps waiting. It also reports whether
// any slot is still waiting, for the loop to look again soon.
func (s *Store) releaseBuffered(ctx context.Context, tx pgx.Tx, inserter Inserter, now time.Time, exclude []string) (released []releasedJob, waiting bool, err error) {
	rows, err := tx.Query(ctx, bufferedSchedulesSQL, exclude)
	if err != nil {
		return nil, false, scheduleErr("find schedules with a buffered slot", err)
	}
	scheds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Schedule, error) { return scanSchedule(row) })
	if err != nil {
		return nil, false, scheduleErr("find schedules with a buffered slot", err)
	}
	for _, sched := range scheds {
		if sched.LastJobID != 0 {
			job, err := inserter.JobGetTx(ctx, tx, sched.LastJobID)
			if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
				return nil, false, scheduleErr(fmt.Sprintf("schedule %q: state of job %d", sched.Name, sched.LastJobID), err)
			}
			if job != nil && jobBlocks(job.State) {
				waiting = true
				continue
			}
		}
		jobs, err := enqueueSlots(ctx, tx, inserter, sched, []time.Time{sched.BufferedSlot}, slotSourceSchedule, now)
		if err != nil {
			return nil, false, err
		}
		if len(jobs) == 0 {
			// The slot was enqueued already (slot table): nothing waits.
			if _, err := tx.Exec(ctx, `UPDATE wasso_schedule SET buffered_slot = NULL WHERE name = $1`, sched.Name); err != nil {
				return nil, false, scheduleErr(fmt.Sprintf("schedule %q: clear its buffered slot", sched.Name), err)
			}
			continue
		}
		if _, err := tx.Exec(ctx, releaseSQL, sched.Name, sched.BufferedSlot, jobs[0].jobID, now); err != nil {
			return nil, false, scheduleErr(fmt.Sprintf("schedule %q: record its buffered run", sched.Name), err)
		}
		released = append(released, releasedJob{sched: sched, job: jobs[0]})
	}
	return released, waiting, nil
}
