package runner_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// TestTwoRunnersOneSweepPerInterval: two runners on one database for two
// minutes with a two-second sweep interval enqueue at most one sweep per
// interval slot: none doubled, none off the schedule's timetable, and
// every slot without a sweep accounted for by the documented policy.
// Both runners seed the attendance-sweep schedule (the first creates it,
// the second finds it seeded) and take part in leader election; only the
// leader's scheduler enqueues.
//
// The sweeps' slots prove it: each job's metadata carries the slot it was
// enqueued for, and the slots of the stored schedule are two seconds
// apart. A second enqueuer would double a slot (the slot table refuses
// it) or, at another phase, put one off the timetable. The schedule's
// counters account for every slot from its first to its next run once: a
// job, a slot skipped because the previous sweep was still running
// (overlap skip), or a slot missed (missed once: a leader elected seconds
// after the start, a pass that came late), each logged by the runner that
// decided it. Such gaps are start-up transients or a loaded machine, not
// faults, so the test does not ask for a sweep in every slot; it asks
// that sweeps never overlap, and that the runners kept the beat once
// sweeping: at least half the slots from the first sweep on have one.
func TestTwoRunnersOneSweepPerInterval(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("takes two minutes")
	}
	reserveConns(t, 12) // two runners
	const (
		interval = 2 * time.Second
		duration = 2 * time.Minute
	)
	db := newDB(t, wassotest.Options{})
	a := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", interval.String())
	b := startRunner(t, db, cliOpts{}, "--no-http", "--sweep-interval", interval.String())

	// Run for the duration; both runners must stay up throughout.
	select {
	case <-a.done:
		t.Fatalf("runner a exited early (code %d)", a.code)
	case <-b.done:
		t.Fatalf("runner b exited early (code %d)", b.code)
	case <-time.After(duration):
	}
	stopRunners(t, a, b)

	s := spGet(t, spStore(t), db, wassoriver.SweepScheduleName)
	require.Equal(t, interval, s.Every)
	jobs := spJobs(t, db, wassoriver.SweepScheduleName)
	require.NotEmpty(t, jobs, "no sweep in %s", duration)
	require.Equal(t, len(jobs), count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep'`), "every sweep came from the schedule")

	// The schedule's first slot: the first of its timetable at or after
	// its creation, as the store computed its first next run.
	first := s.StartAt
	if late := s.CreatedAt.Sub(first); late > 0 {
		first = first.Add((late + interval - 1) / interval * interval)
	}
	// One job per slot at most, every job on a slot of the timetable, and
	// run + skipped + missed = the slots from the first to the next run.
	without := spCheckTimetable(t, s, first, jobs)
	spCheckSlotTable(t, db, wassoriver.SweepScheduleName, len(jobs))

	for i, j := range jobs {
		// Overlap skip: a sweep is enqueued only once the previous one
		// has finished, so every sweep but the last ran to completion
		// (the last may have been cut off by the stop and made available
		// again), and none started before the previous one finished.
		if i < len(jobs)-1 {
			require.Equal(t, "completed", j.State, "sweep %d (slot %s)", j.ID, j.SlotText)
		}
		if i > 0 && j.AttemptedAt != nil {
			prev := jobs[i-1]
			require.True(t, j.AttemptedAt.After(*prev.FinalizedAt),
				"sweep %d started at %s, before sweep %d finished at %s", j.ID, j.AttemptedAt, prev.ID, prev.FinalizedAt)
		}
	}

	// Every slot skipped or missed was decided, and logged, by a leader.
	skipped, missed := 0, 0
	for _, p := range []*proc{a, b} {
		for _, line := range p.logLines() {
			if line["schedule"] != wassoriver.SweepScheduleName {
				continue
			}
			switch line["msg"] {
			case "schedule slot skipped: previous job not finished":
				skipped++
			case "schedule slots missed":
				n, _ := line["missed"].(float64)
				missed += int(n)
			}
		}
	}
	require.EqualValues(t, s.SkippedCount, skipped, "slots skipped (skipped_count) and skip warnings logged")
	require.EqualValues(t, s.MissedCount, missed, "slots missed (missed_count) and missed counts logged")

	// The steady state: from the first sweep on, the leader kept the
	// beat.
	steady := int(s.NextRunAt.Sub(jobs[0].Slot) / interval)
	require.GreaterOrEqual(t, 2*len(jobs), steady,
		"%d sweeps for the %d slots from the first sweep (%s) on: %d skipped, %d missed", len(jobs), steady, jobs[0].SlotText, s.SkippedCount, s.MissedCount)
	workers := count(t, db.Pool, `SELECT count(DISTINCT w) FROM river_job, unnest(attempted_by) AS w WHERE kind = 'attendance.sweep'`)
	t.Logf("%d sweeps over %s at %s, worked by %d runner(s); %d slots of %d without a sweep (%d skipped, %d missed), the first sweep %s after the first slot",
		len(jobs), duration, interval, workers, len(without), len(jobs)+len(without), s.SkippedCount, s.MissedCount, jobs[0].Slot.Sub(first))
}
