//go:build wasso_faultinject

package runner

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/wasso/scheduler/river/schedule"
)

// This file is built only with the wasso_faultinject tag, by the fault
// tests (fault_test.go), never into a release binary. It adds test.panic,
// a job kind whose worker panics with the job's message: no attendance job
// can be made to panic from the database, and the tests must show what a
// panicking job does to a real runner process. It also adds test.sleep, a
// job that takes as long as its args say: the schedule tests need a job
// slower than its schedule's interval, and no attendance job can be made
// slow on demand.
func init() {
	addTestWorkers = func(workers *river.Workers) {
		river.AddWorker(workers, &panicWorker{})
		river.AddWorker(workers, &sleepWorker{})
	}
	// Schedules written through this build (the schedule command, the
	// schedules page) may name the test kinds too.
	addTestScheduleKinds = func() []schedule.Kind {
		return []schedule.Kind{schedule.NewKind(panicArgs{}), schedule.NewKind(sleepArgs{})}
	}
}

// panicArgs are the arguments of a test.panic job.
type panicArgs struct {
	Message string `json:"message"`
}

func (panicArgs) Kind() string { return "test.panic" }

type panicWorker struct {
	river.WorkerDefaults[panicArgs]
}

// Work panics: River recovers, records the panic value and stack as the
// attempt's error, and retries the job with its backoff.
func (*panicWorker) Work(_ context.Context, job *river.Job[panicArgs]) error {
	panic(job.Args.Message)
}

// sleepArgs are the arguments of a test.sleep job.
type sleepArgs struct {
	// MS is how long the job runs, in milliseconds.
	MS int `json:"ms"`
}

func (sleepArgs) Kind() string { return "test.sleep" }

type sleepWorker struct {
	river.WorkerDefaults[sleepArgs]
}

// Work sleeps for the job's MS milliseconds, or until its context is
// cancelled (a hard stop), so that a stopping runner is not held up by it.
func (*sleepWorker) Work(ctx context.Context, job *river.Job[sleepArgs]) error {
	select {
	case <-time.After(time.Duration(job.Args.MS) * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
