package wassoriver

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// NotifyCheckTimeoutDefault is how long CheckNotify waits for its
// notification when given no timeout: on a direct connection it arrives
// within milliseconds.
const NotifyCheckTimeoutDefault = 2 * time.Second

// ErrNotifyLost is returned by CheckNotify when a notification sent
// through the pool never reached the listener: the pool (or the listen
// pool) goes through a connection pooler in transaction or statement mode,
// which hands the LISTENing server connection back to its pool. Runners
// then work, but every wake-up that LISTEN carries (River's inserts, the
// exact deadlines, schedule changes) falls back to polling.
var ErrNotifyLost = errors.New("notification not delivered: LISTEN does not work on this connection (a pooler in transaction mode?)")

// notifyCheckChannel is the channel CheckNotify uses; the payload is
// random, so that checks running at once never see each other's.
const notifyCheckChannel = "wasso_notify_check"

// CheckNotify LISTENs on a connection of listen (pool when nil), sends a
// notification through pool, as River's inserts and the Discoverer's wakes
// do, and waits up to timeout (NotifyCheckTimeoutDefault when zero) for it
// to arrive: nil when it did, ErrNotifyLost when it did not, another error
// when the database could not be asked. The listening connection is closed
// afterwards, never returned to its pool.
func CheckNotify(ctx context.Context, pool, listen *pgxpool.Pool, timeout time.Duration) error {
	timeout = cmp.Or(timeout, NotifyCheckTimeoutDefault)
	pooled, err := cmp.Or(listen, pool).Acquire(ctx)
	if err != nil {
		return fmt.Errorf("check notifications: acquire a connection: %w", err)
	}
	conn := pooled.Hijack()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyCheckChannel); err != nil {
		return fmt.Errorf("check notifications: listen: %w", err)
	}
	payload := rand.Text()
	if _, err := pool.Exec(ctx, "SELECT pg_notify($1, $2)", notifyCheckChannel, payload); err != nil {
		return fmt.Errorf("check notifications: notify: %w", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(waitCtx)
		switch {
		case err == nil && n.Payload == payload:
			return nil
		case err == nil:
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case waitCtx.Err() != nil:
			return fmt.Errorf("%w (waited %s)", ErrNotifyLost, timeout)
		default:
			return fmt.Errorf("check notifications: %w", err)
		}
	}
}
