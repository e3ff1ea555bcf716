package runner

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// runningJobs is what a runner reports with each heartbeat: the jobs it
// is working. A job enters when its work begins (a River hook) and leaves
// when River reports its outcome recorded (a subscription), or
// completionGrace after its work ended if no outcome comes: River's
// completer gives up on a database it cannot reach. The leader's rescuer
// gives back a job the database says this runner is running and the
// runner does not report (see rescueLostSQL).
type runningJobs struct {
	river.HookDefaults

	mu    sync.Mutex
	jobs  map[int64]time.Time // job id -> when its work ended; zero while it runs
	clock func() time.Time
}

// completionGrace is how long a job whose work ended stays reported while
// River has not said its outcome is recorded: longer than River's
// completer retries a failing write (three attempts, about 7 s of
// backoff), so that a job being completed is never given back.
const completionGrace = 40 * time.Second

func newRunningJobs() *runningJobs {
	return &runningJobs{jobs: map[int64]time.Time{}, clock: time.Now}
}

// WorkBegin implements rivertype.HookWorkBegin.
func (r *runningJobs) WorkBegin(_ context.Context, job *rivertype.JobRow) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs[job.ID] = time.Time{}
	return nil
}

// WorkEnd implements rivertype.HookWorkEnd.
func (r *runningJobs) WorkEnd(_ context.Context, job *rivertype.JobRow, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.jobs[job.ID]; ok {
		r.jobs[job.ID] = r.clock()
	}
	return err
}

// observe drops the job of an event: River reports its outcome
// recorded.
func (r *runningJobs) observe(ev *river.Event) {
	if ev == nil || ev.Job == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jobs, ev.Job.ID)
}

// ids returns the jobs to report, sorted, never nil (an empty array says
// "none", where null says "not reported").
func (r *runningJobs) ids() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	out := []int64{}
	for id, ended := range r.jobs {
		if !ended.IsZero() && now.Sub(ended) > completionGrace {
			delete(r.jobs, id)
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
