package wassoriver

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/river/schedule"
)

// SweepScheduleName is the name of the stored schedule that enqueues the
// attendance sweep, the one default schedule (see DefaultSchedules).
const SweepScheduleName = "attendance-sweep"

// CeleryTaskMarkAbsent is the Celery task of the Django backend that the
// attendance sweep (attendance.sweep) replaces.
const CeleryTaskMarkAbsent = "scheduler.tasks.mark_absent_for_past_events"

// DefaultSchedules returns the schedules a deployment starts with, to be
// given to schedule.Seed: the attendance sweep (SweepScheduleName), every
// config.SweepInterval (attendance.SweepIntervalDefault when zero), with
// schedule.MissedOnce (one sweep after an outage, not one per slot
// missed) and schedule.OverlapSkip (no second sweep while one is still
// running).
//
// Its StartAt is the whole second two seconds after now, which anchors
// its slots: the first falls right after it is seeded, so that a new
// deployment sweeps at once, and the others every interval after that.
// Call it just before seeding: a seeding that ends after StartAt has
// passed gets its first sweep one interval later, and the margin keeps a
// slow seeding (a loaded database) from that.
func DefaultSchedules(config Config, now time.Time) []schedule.Schedule {
	interval := config.WithDefaults().SweepInterval
	return []schedule.Schedule{{
		Name:        SweepScheduleName,
		Kind:        attendance.SweepKind,
		Every:       interval,
		Enabled:     true,
		StartAt:     now.Truncate(time.Second).Add(2 * time.Second),
		Missed:      schedule.MissedOnce,
		Overlap:     schedule.OverlapSkip,
		Description: "Settle every event whose check-in deadline has passed (the Celery task mark_absent_for_past_events).",
	}}
}

// ScheduleKinds are the job kinds of this module that schedules may name:
// attendance.sweep, attendance.settle_event and attendance.notify_absent.
// A backend with kinds of its own passes
// append(ScheduleKinds(), schedule.NewKind(MyArgs{})) as
// schedule.StoreConfig.Kinds.
func ScheduleKinds() []schedule.Kind {
	return []schedule.Kind{
		schedule.NewKind(attendance.SweepArgs{}),
		schedule.NewKind(attendance.SettleEventArgs{}),
		schedule.NewKind(attendance.NotifyAbsentArgs{}),
	}
}

// CeleryTaskKinds maps the Celery tasks of the Django backend to the job
// kinds that do their work here, for schedule.CeleryImportOptions.TaskKinds:
// the absent marking, which the attendance sweep does.
func CeleryTaskKinds() map[string]string {
	return map[string]string{CeleryTaskMarkAbsent: attendance.SweepKind}
}

// ScheduleStoreConfig returns config.Schedules with what this module fills
// in: ScheduleKinds when Kinds is nil, and config.Logger when Logger is.
func ScheduleStoreConfig(config Config) schedule.StoreConfig {
	sc := config.Schedules
	if sc.Kinds == nil {
		sc.Kinds = ScheduleKinds()
	}
	if sc.Logger == nil {
		sc.Logger = config.Logger
	}
	return sc
}

// clientScheduler returns the Scheduler NewClient adds to its hooks:
// config.Scheduler, else one built from config.Schedules that seeds
// DefaultSchedules when it leads, or nil with NoSchedules.
func clientScheduler(pool *pgxpool.Pool, config Config) (*schedule.Scheduler, error) {
	if config.NoSchedules {
		return nil, nil
	}
	if config.Scheduler != nil {
		if config.ListenPool != nil {
			config.Scheduler.ListenOn(config.ListenPool)
		}
		return config.Scheduler, nil
	}
	store, err := schedule.NewStore(ScheduleStoreConfig(config))
	if err != nil {
		return nil, err
	}
	scheduler, err := schedule.NewScheduler(pool, store)
	if err != nil {
		return nil, err
	}
	scheduler.SeedWhenLeading(func(now time.Time) []schedule.Schedule { return DefaultSchedules(config, now) })
	if config.ListenPool != nil {
		scheduler.ListenOn(config.ListenPool)
	}
	return scheduler, nil
}
