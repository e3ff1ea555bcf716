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
// The package lives in the river/ directory but is named wassoriver, not
// river, so that a backend can import it next to
// github.com/riverqueue/river without renaming either import, and so that
// "wassoriver.NewClient" and "river.NewClient" can never be mistaken for
// each other in a file that uses both.
package wassoriver
