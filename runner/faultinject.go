//go:build wasso_faultinject

package runner

import (
	"context"

	"github.com/riverqueue/river"
)

// This file is built only with the wasso_faultinject tag, by the fault
// tests (fault_test.go), never into a release binary. It adds test.panic,
// a job kind whose worker panics with the job's message: no attendance job
// can be made to panic from the database, and the tests must show what a
// panicking job does to a real runner process.
func init() {
	addTestWorkers = func(workers *river.Workers) {
		river.AddWorker(workers, &panicWorker{})
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
