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
//     restarts and several runners do not pile sweeps up. It is the safety
//     net; events are settled at their deadline by the jobs below.
//
// Exact deadlines. Each event gets an attendance.settle_event job
// (SettleEventArgs, SettleEventWorker) scheduled at its deadline in
// QueueExact. The backend inserts it with ScheduleEventTx in the
// transaction that creates or moves the event; for events the Django
// backend writes, DiscoverTx, run every second by a loop on the River
// leader, inserts it for every event whose current deadline is near and
// neither planned nor settled (wasso_deadline_plan). A job for a deadline
// the event no longer has, or for a deleted event, finds nothing due:
// settlement stays idempotent through wasso_settlement.
//
// This package decides which events need a job and records the plan; it
// names no River table or channel. Making the jobs start at their instants
// rather than at River's next poll or five-second scheduler is River
// machinery, in package wassoriver: its ExactTimeHook and the leader's
// Discoverer, which runs DiscoverTx, make each job available ahead of its
// instant and wake the runners at it.
//
// Notifications. NotifyFollowUp enqueues, in each settlement's
// transaction, an attendance.notify_absent job for the members just marked
// absent; NotifyAbsentWorker resolves the names and hands an AbsentNotice
// to a Notifier: the backend's push provider, LogNotifier or
// WebhookNotifier (JSON POST signed the Standard Webhooks way, checked by
// receivers with VerifyWebhook). A notifier that fails is retried by
// River and never touches the settlement.
//
// The rules the settlement follows (due, roster, update, insert, once,
// atomic, safe under overlap, observable, cheap when idle) are spelled out
// in the README and pinned down by this package's tests.
package attendance
