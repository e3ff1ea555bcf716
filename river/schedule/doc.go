// Package schedule is a durable scheduler for River: schedules are rows of
// the wasso_schedule table, written at run time by any process (in its own
// transaction, with its own rows), and every slot of a schedule becomes
// exactly one River job, enqueued by the River leader.
//
// A Schedule is a job kind and its args, run every interval (Every) or on
// a five-field cron expression (Cron) in an IANA time zone, with the
// daylight saving rules of cron (timetable.go); MissedPolicy and
// OverlapPolicy say what happens to slots that pass while no leader runs
// and while the previous job is still running.
//
// The parts, each in a file of its name:
//
//   - Store (store.go) writes and reads schedules: create, update,
//     enable, disable, delete, run now, backfill, counters and slot
//     history. Each write takes a pool or the caller's transaction.
//   - Kind (kind.go) names a job kind schedules may run, and checks a
//     schedule's args against the kind's args type when it is written.
//   - Scheduler (scheduler.go) is the loop that turns due slots into jobs:
//     a River hook that runs on the leader, woken by NOTIFY and by the
//     earliest next run.
//   - NewHandler (handler.go) is the schedules page and its JSON API, an
//     http.Handler to mount next to River UI.
//   - ImportCeleryBeat (celerybeat.go) copies django-celery-beat's
//     periodic tasks into schedules.
//   - Seed (seed.go) creates a deployment's default schedules once ever.
//
// The package knows nothing of the jobs it enqueues beyond their kinds
// (StoreConfig.Kinds): it needs River's client (Inserter) and a Postgres
// pool, and the tables of this module's migrations.
package schedule
