// Package leaderloop runs a loop that River starts on the client elected
// leader: the schedule loop and the deadline discovery loop are River hooks
// (rivertype.HookPeriodicJobsStart) with the same lifecycle, kept here once.
//
// River calls the hook's Start with a context it cancels when the client
// stops or loses leadership, but it does not wait for the hook's goroutine;
// Wait lets the client's Stop do that.
package leaderloop

import (
	"context"
	"fmt"
	"sync"
)

// Loop runs one goroutine at a time. The zero value is ready to use.
type Loop struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Start stops the run still going from an earlier Start, if any, then
// runs run(ctx) in a goroutine of its own and returns at once.
func (l *Loop) Start(ctx context.Context, run func(ctx context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		run(ctx)
	}()
}

// Stop cancels the run started by Start, if any, and waits for it.
func (l *Loop) Stop() {
	l.mu.Lock()
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	_ = l.Wait(context.Background(), "")
}

// Wait returns once the run started by Start, if any, has returned, or
// with an error naming what once ctx is done.
func (l *Loop) Wait(ctx context.Context, what string) error {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the %s to stop: %w", what, ctx.Err())
	}
}
