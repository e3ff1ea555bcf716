package wassoriver

import (
	"context"
	"time"

	"github.com/wasso/scheduler/attendance"
)

// PassCheck runs the first statement of a discovery pass on db: the jobs
// it made available, the instants it reports for the wakes, and whether an
// event needs a job.
func PassCheck(ctx context.Context, db attendance.DB, riverSchema string, ahead time.Duration) (int64, []time.Time, bool, error) {
	c, err := firstStatement(ctx, db, passSQL(riverSchema), ahead, attendance.LookbackDefault, attendance.DiscoveryHorizonDefault)
	return c.promoted, c.instants, c.pending, err
}

// AddWakes is d.addWakes.
func AddWakes(d *Discoverer, instants []time.Time, offset time.Duration) {
	d.addWakes(instants, offset)
}

// Wakes returns the wakes d holds, on this process's clock.
func Wakes(d *Discoverer) []time.Time {
	d.wakesMu.Lock()
	defer d.wakesMu.Unlock()
	return append([]time.Time(nil), d.wakes...)
}
