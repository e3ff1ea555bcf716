package runner

import "github.com/riverqueue/river"

// addTestWorkers, when set, registers job kinds of its own on the River
// client of the run command. Only a test build sets it (faultinject.go,
// built with the wasso_faultinject tag for the fault and schedule tests,
// which need a job that panics and one that is slow); a release binary
// works the attendance kinds alone.
var addTestWorkers func(workers *river.Workers)

// testWorkers returns the workers addTestWorkers registers, or nil (the
// attendance workers only) in a release build.
func testWorkers() *river.Workers {
	if addTestWorkers == nil {
		return nil
	}
	workers := river.NewWorkers()
	addTestWorkers(workers)
	return workers
}
