// Package attendance settles Wasso events: once an event's check-in
// deadline (start_datetime + fail_minutes) has passed, every roster member
// whose latest attendance row is UNCHECKED is marked ABSENT and every
// roster member with no row gets an ABSENT row, all in one transaction with
// the record that the event was settled for that deadline.
//
// The package works on the Wasso tables exactly as the Django backend
// created them (no column defaults, no unique key on attendances) and keeps
// its own state in wasso_ tables. It can be used three ways:
//
//   - SettleDueTx settles the due events inside a transaction the caller
//     owns; SettleDue does the same in batches of its own transactions.
//   - SweepWorker is the River worker of the attendance.sweep job, which
//     runs SettleDue and records the counts as the job's output.
//   - PeriodicSweep returns the River periodic job that enqueues the sweep
//     every interval (five minutes by default), unique per interval so that
//     restarts and several runners do not pile sweeps up.
//
// The rules the settlement follows (due, roster, update, insert, once,
// atomic, safe under overlap, observable, cheap when idle) are spelled out
// in the README and pinned down by this package's tests.
package attendance
