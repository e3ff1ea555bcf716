package attendance

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// PromoteExact is promoteExact: one promotion in tx, with the instants it
// reports for the wakes.
func PromoteExact(ctx context.Context, tx pgx.Tx, riverSchema string, ahead time.Duration) (int64, []time.Time, error) {
	n, instants, _, err := promoteExact(ctx, tx, riverSchema, ahead)
	return n, instants, err
}

// AddWakes is d.addWakes.
func AddWakes(d *Discoverer, instants []time.Time, offset time.Duration) { d.addWakes(instants, offset) }

// Wakes returns the wakes d holds, on this process's clock.
func Wakes(d *Discoverer) []time.Time {
	d.wakesMu.Lock()
	defer d.wakesMu.Unlock()
	return append([]time.Time(nil), d.wakes...)
}
