package wassotest

import (
	"testing"
	"time"
)

// waitForMaxInterval bounds the pause between two calls of a WaitFor
// condition: short enough that a wait ends soon after its condition holds,
// long enough that a minute's wait for a runner does not keep a database
// busy with queries.
const waitForMaxInterval = 50 * time.Millisecond

// WaitFor calls cond until it returns true and fails the test once timeout
// has passed, naming what it waited for ("gave up after 30s waiting for
// <what>"). Pick a timeout far above what the condition needs, so that
// only a real failure times out on a loaded machine.
//
// cond is called at once, then after pauses that double from 5 ms up to
// 50 ms. Unlike require.Eventually, it runs on the calling goroutine, one
// call at a time, so it may read the test's variables without a lock and a
// require in it fails the test at once with its own message rather than as
// a timeout. A condition that can fail transiently (a query while the
// database restarts) should return false instead.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for pause := 5 * time.Millisecond; !cond(); pause = min(2*pause, waitForMaxInterval) {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}
