package runner

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// NotifySignals returns a context cancelled on the first SIGINT or SIGTERM
// and a channel closed on the second, for Env.HardStop: the first asks
// for a graceful stop (finish running jobs), the second for an immediate
// one. stop releases the signal handlers.
func NotifySignals(parent context.Context) (ctx context.Context, hardStop <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	hard := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			close(hard)
		case <-done:
		}
	}()
	return ctx, hard, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
