package wassoriver

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
)

// ExactPromoteAhead is how long before its scheduled instant a job of
// attendance.QueueExact is made available. ExactTimeHook inserts a job due
// sooner than this as available at once; a job due later stays scheduled,
// and the leader's Discoverer makes it available on the pass (every
// DiscoveryIntervalDefault, one second) that finds it due within
// ExactPromoteAhead.
//
// It is River's own look-ahead plus a pass and a margin. River's job
// scheduler makes the scheduled jobs due within its interval (five
// seconds) available on each of its runs; ahead of that, the Discoverer
// has promoted every job River's scheduler would see, so River's scheduler
// never has a burst of these jobs to promote. It matters: River's
// statement (JobSchedule) checks each job's unique key against the others
// through a nested loop when the table's statistics predate the burst
// (autovacuum analyses a few seconds later), which is slow for a burst of
// settle_event jobs and holds their rows meanwhile.
const ExactPromoteAhead = 7 * time.Second

// ExactTimeHook is a River insert hook that lets a job of
// attendance.QueueExact scheduled for a future instant start at that
// instant rather than up to five seconds later. It leaves the jobs of
// every other queue alone.
//
// River inserts a job with InsertOpts.ScheduledAt in state "scheduled", and
// only the leader's job scheduler moves scheduled jobs to "available": once
// every five seconds (maintenance.JobSchedulerIntervalDefault, which River
// does not let a client change outside its own tests), taking the jobs due
// within the next five seconds. Producers fetch with "state = 'available'
// AND scheduled_at <= now()" (the driver's JobGetAvailable query), so a job
// that is available with a future scheduled_at is fetched by the first
// fetch after that instant. River does exactly this itself for snoozes and
// retries shorter than the scheduler interval (JobSetStateSnoozedAvailable
// and JobSetStateErrorAvailable in internal/jobexecutor). A job inserted
// less than five seconds before its instant, though, can miss the
// scheduler run that would have looked far enough ahead, and wait for the
// next one: up to five seconds.
//
// The hook applies River's rule to a job due within ExactPromoteAhead: it
// is inserted as available, with its scheduled_at kept. A job due later is
// left scheduled, so that River UI shows it as Scheduled while it waits,
// and the leader's Discoverer (the first statement of each pass) makes it
// available, its scheduled_at unchanged, about ExactPromoteAhead before
// its instant, and wakes the queue's producers at that instant. Without a
// Discoverer running (a client built with NoDeadlines, or no leader for a
// while), River's own scheduler still makes the job available (before its
// instant when it was inserted far enough ahead, up to five seconds after
// it otherwise), and the queue's poll (its FetchPollInterval) starts it.
//
// Only jobs within ExactPromoteAhead wait in the fetch index as available
// (river_job_prioritized_fetching_index, in scheduled_at order), so the
// queue's fetch steps over a few seconds' worth of jobs, not the whole
// discovery horizon.
//
// It applies to the jobs of the River client that carries it: NewClient
// adds it to the client's hooks, and a backend's own client that inserts
// the jobs of attendance.QueueExact (attendance.ScheduleEventTx) adds it
// to its river.Config.Hooks. Job args may also return it from a Hooks
// method (river.JobArgsWithHooks), so that it applies whichever client
// inserts them (see examples/newtask).
type ExactTimeHook struct {
	river.HookDefaults
}

// InsertBegin turns a scheduled insert of attendance.QueueExact due within
// ExactPromoteAhead (on this process's clock) into an available one,
// keeping its scheduled_at.
func (*ExactTimeHook) InsertBegin(_ context.Context, params *rivertype.JobInsertParams) error {
	if params.State != rivertype.JobStateScheduled || params.Queue != attendance.QueueExact {
		return nil
	}
	if params.ScheduledAt == nil || time.Until(*params.ScheduledAt) <= ExactPromoteAhead {
		params.State = rivertype.JobStateAvailable
	}
	return nil
}

var _ rivertype.HookInsertBegin = (*ExactTimeHook)(nil)
