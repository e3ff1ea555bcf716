// Package wassoriver wires the Wasso scheduler into River: it builds a
// River client from a *pgxpool.Pool and a small Config with the defaults a
// Wasso runner wants, registers the attendance workers (sweep, per-event
// settlement, absent notices), adds the exact-time queue with its fast
// poll, the leader's deadline discovery hook and the leader's
// schedule.Scheduler of the schedules stored in Postgres (the sweep is one
// of them, DefaultSchedules, seeded once), and offers the same pieces to a
// backend that runs its own River client. The durable scheduler itself is
// the package river/schedule, which knows nothing of attendance.
//
// Exact deadlines. The jobs of attendance.QueueExact start at their
// scheduled instants, not at River's next poll or five-second job
// scheduler: ExactTimeHook, which every client NewClient builds carries,
// inserts a job due within ExactPromoteAhead as available with its
// scheduled_at kept, and the leader's Discoverer, every
// DiscoveryIntervalDefault, makes the later ones available as they come
// within ExactPromoteAhead, wakes the queue's producers at each instant,
// and runs attendance.DiscoverTx when an event written without
// attendance.ScheduleEventTx needs a job.
//
// River's tables and channels. River's public API cannot make a scheduled
// job available ahead of its time or wake a queue's producers, so the
// Discoverer does both with SQL on River's tables and channels. Those
// statements are in riversql.go, each with the reason River's API cannot
// do it, and riversql_test.go fails when go.mod moves to a River release
// other than the one they were checked against.
//
// The package lives in the river/ directory but is named wassoriver, not
// river, so that a backend can import it next to
// github.com/riverqueue/river without renaming either import, and so that
// "wassoriver.NewClient" and "river.NewClient" can never be mistaken for
// each other in a file that uses both.
package wassoriver
