package wassotest

import (
	"context"
	"testing"
	"time"
)

// Client is the Start and Stop of a River client: a *river.Client, a
// wassoriver.Client, or anything else started and stopped with a context.
type Client interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// clientStopTimeout is how long StartClient's cleanup waits for Stop: far
// more than a client with no job in flight needs.
const clientStopTimeout = 10 * time.Second

// StartClient starts client and stops it when the test ends, failing the
// test if either fails.
func StartClient(tb testing.TB, client Client) {
	tb.Helper()
	if err := client.Start(context.Background()); err != nil {
		tb.Fatalf("wassotest: start client: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), clientStopTimeout)
		defer cancel()
		if err := client.Stop(ctx); err != nil {
			tb.Errorf("wassotest: stop client: %v", err)
		}
	})
}
