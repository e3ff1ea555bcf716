package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/attendance"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// metrics are the runner's Prometheus metrics, on a registry of its own
// (never the global one, so that two runners in one process, as in the
// demo, do not collide).
//
// Job counters come from River's event subscription, so they count the
// jobs this process worked. Queue depth and leadership are read from the
// database when scraped, so they describe the whole cluster and cost
// nothing between scrapes.
type metrics struct {
	registry *prometheus.Registry

	jobsCompleted *prometheus.CounterVec
	jobsFailed    *prometheus.CounterVec
	jobsRetried   *prometheus.CounterVec
	jobsDiscarded *prometheus.CounterVec
	jobsCancelled *prometheus.CounterVec
	jobsSnoozed   *prometheus.CounterVec
	jobDuration   *prometheus.HistogramVec

	sweepRuns        *prometheus.CounterVec
	sweepEvents      prometheus.Counter
	sweepUpdated     prometheus.Counter
	sweepCreated     prometheus.Counter
	sweepLastSuccess prometheus.Gauge

	// lostJobsRescued counts the jobs of lost runners this runner's
	// rescuer gave back (see lostRunnerRescuer), as leader.
	lostJobsRescued prometheus.Counter

	// notifyDelivered is 1 when the start-up check found that
	// notifications reach this runner, 0 when they are lost (a pooler in
	// transaction mode without database.listen_url).
	notifyDelivered prometheus.Gauge

	// started is true while the River client is started; the ready gauge
	// adds a ping of the database at scrape time, as /readyz does.
	started atomic.Bool
	ready   prometheus.GaugeFunc
}

func newMetrics(a *app, pool *pgxpool.Pool, clientID func() string) *metrics {
	kind := []string{"kind"}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		jobsCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasso_jobs_completed_total", Help: "Jobs this runner completed, by kind.",
		}, kind),
		jobsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasso_jobs_failed_total", Help: "Job attempts that failed on this runner, by kind (retried or discarded).",
		}, kind),
		jobsRetried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasso_jobs_retried_total", Help: "Failed job attempts that River will retry, by kind.",
		}, kind),
		jobsDiscarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasso_jobs_discarded_total", Help: "Jobs that failed for the last time on this runner, by kind.",
		}, kind),
		jobsCancelled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasso_jobs_cancelled_total", Help: "Jobs cancelled while this runner worked them, by kind.",
		}, kind),
		jobsSnoozed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasso_jobs_snoozed_total", Help: "Jobs snoozed on this runner, by kind.",
		}, kind),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasso_job_duration_seconds",
			Help:    "How long job attempts ran on this runner, by kind.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300},
		}, kind),
		sweepRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasso_sweep_runs_total", Help: "Attendance sweeps this runner ran, by result (completed or failed).",
		}, []string{"result"}),
		sweepEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasso_sweep_events_total", Help: "Events settled by this runner's sweeps.",
		}),
		sweepUpdated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasso_sweep_rows_updated_total", Help: "Attendance rows turned ABSENT by this runner's sweeps.",
		}),
		sweepCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasso_sweep_rows_created_total", Help: "ABSENT attendance rows created by this runner's sweeps.",
		}),
		sweepLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wasso_sweep_last_success_timestamp_seconds", Help: "Unix time of this runner's last successful sweep (0: none yet).",
		}),
		lostJobsRescued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasso_lost_runner_jobs_rescued_total",
			Help: "Running jobs of lost runners (no heartbeat, or stopped with them running) that this runner, as leader, made available again or discarded.",
		}),
		notifyDelivered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wasso_runner_notifications_delivered",
			Help: "1 when a notification sent at start reached this runner's listener, 0 when it was lost: LISTEN does not work through the pooler, and wake-ups fall back to polling (set database.listen_url).",
		}),
	}
	m.ready = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wasso_runner_ready", Help: "1 while the River client is started and the database answers a ping (what /readyz checks), read at scrape time.",
	}, func() float64 {
		if !m.started.Load() {
			return 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), readyzTimeout)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			return 0
		}
		return 1
	})
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wasso_runner_info", Help: "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": versionString(), "river_version": moduleVersion("github.com/riverqueue/river")},
	})
	info.Set(1)
	// Pre-create the sweep series and the job series of the kinds this
	// runner works, so that dashboards see zeros, not gaps, and rate()
	// and increase() see a series' first increment (a series that
	// appears at 1 has no earlier sample to count from).
	m.sweepRuns.WithLabelValues("completed")
	m.sweepRuns.WithLabelValues("failed")
	for _, kind := range wassoriver.Kinds(a.cfg.RiverConfig()) {
		for _, v := range []*prometheus.CounterVec{m.jobsCompleted, m.jobsFailed, m.jobsRetried, m.jobsDiscarded, m.jobsCancelled, m.jobsSnoozed} {
			v.WithLabelValues(kind)
		}
		m.jobDuration.WithLabelValues(kind)
	}
	m.registry.MustRegister(
		m.jobsCompleted, m.jobsFailed, m.jobsRetried, m.jobsDiscarded, m.jobsCancelled, m.jobsSnoozed, m.jobDuration,
		m.sweepRuns, m.sweepEvents, m.sweepUpdated, m.sweepCreated, m.sweepLastSuccess, m.lostJobsRescued, m.notifyDelivered, m.ready, info,
		newDBCollector(a, pool, clientID),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// subscribedEvents are the River events the counters and the running
// jobs follow.
var subscribedEvents = []river.EventKind{
	river.EventKindJobCancelled,
	river.EventKindJobCompleted,
	river.EventKindJobFailed,
	river.EventKindJobSnoozed,
}

// consume hands each event to every observer until the channel closes
// (the client stopped) or ctx is done: the counters, and the jobs the
// heartbeat reports (runningJobs.observe).
func consume(ctx context.Context, events <-chan *river.Event, observers ...func(*river.Event)) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			for _, observe := range observers {
				observe(ev)
			}
		}
	}
}

func (m *metrics) observe(ev *river.Event) {
	if ev == nil || ev.Job == nil {
		return
	}
	kind := ev.Job.Kind
	if ev.JobStats != nil {
		m.jobDuration.WithLabelValues(kind).Observe(ev.JobStats.RunDuration.Seconds())
	}
	switch ev.Kind {
	case river.EventKindJobCompleted:
		m.jobsCompleted.WithLabelValues(kind).Inc()
	case river.EventKindJobFailed:
		m.jobsFailed.WithLabelValues(kind).Inc()
		if ev.Job.State == rivertype.JobStateDiscarded {
			m.jobsDiscarded.WithLabelValues(kind).Inc()
		} else {
			m.jobsRetried.WithLabelValues(kind).Inc()
		}
	case river.EventKindJobCancelled:
		m.jobsCancelled.WithLabelValues(kind).Inc()
	case river.EventKindJobSnoozed:
		m.jobsSnoozed.WithLabelValues(kind).Inc()
	}
	if kind != attendance.SweepKind {
		return
	}
	switch ev.Kind {
	case river.EventKindJobCompleted:
		m.sweepRuns.WithLabelValues("completed").Inc()
		m.sweepLastSuccess.Set(float64(time.Now().Unix()))
		var out attendance.SweepOutput
		if raw := ev.Job.Output(); len(raw) > 0 && json.Unmarshal(raw, &out) == nil {
			m.sweepEvents.Add(float64(out.ProcessedEvents))
			m.sweepUpdated.Add(float64(out.UpdatedRows))
			m.sweepCreated.Add(float64(out.CreatedRows))
		}
	case river.EventKindJobFailed:
		m.sweepRuns.WithLabelValues("failed").Inc()
	}
}

// dbCollector reads queue depth, leadership, the jobs of lost runners,
// the settlement backlog and the schedules' counters at scrape time.
type dbCollector struct {
	a        *app
	pool     *pgxpool.Pool
	clientID func() string
	// store reads the schedules' counters (schedule.Store.Stats); nil
	// leaves the schedule series out.
	store *schedule.Store
}

func newDBCollector(a *app, pool *pgxpool.Pool, clientID func() string) *dbCollector {
	c := &dbCollector{a: a, pool: pool, clientID: clientID}
	store, err := a.newScheduleStore(nil)
	if err != nil {
		// The schedules keys were checked when the configuration loaded.
		a.logger.Warn("metrics: no schedule series", slog.String("error", err.Error()))
	}
	c.store = store
	return c
}

var (
	jobsDesc = prometheus.NewDesc("wasso_jobs", "Jobs in the database by queue and state (queue depth: available, scheduled, retryable, running).",
		[]string{"queue", "state"}, nil)
	leaderDesc   = prometheus.NewDesc("wasso_leader", "1 when this runner is the elected leader (it runs the schedules).", nil, nil)
	lostJobsDesc = prometheus.NewDesc("wasso_lost_runner_jobs",
		fmt.Sprintf("Running jobs held by a lost runner (no heartbeat for %s, or stopped with them running). The leader gives them back within %s; a value that stays above 0 means no leader rescues them.",
			RunnerLostAfter, RescueLostInterval), nil, nil)

	// The settlement backlog is the cluster's, the same on every runner.
	settlementOverdueDesc = prometheus.NewDesc("wasso_settlement_overdue_seconds",
		"How long ago, by the database clock, the deadline of the oldest due and unsettled event passed (within sweep.lookback); 0 when none is.", nil, nil)
	settlementOverdueEventsDesc = prometheus.NewDesc("wasso_settlement_overdue_events",
		"Events whose deadline passed (within sweep.lookback) and that are not settled for it.", nil, nil)

	// The schedules' counters live in wasso_schedule, kept by whichever
	// runner leads: read from there, they are the cluster's, the same on
	// every runner, and survive restarts. They only grow, unless a
	// schedule is removed and added again.
	scheduleLabels   = []string{"schedule"}
	scheduleRunsDesc = prometheus.NewDesc("wasso_schedule_runs_total",
		"Jobs enqueued for each stored schedule (by the leader's scheduler, run-now and backfill).", scheduleLabels, nil)
	scheduleSkipsDesc = prometheus.NewDesc("wasso_schedule_skips_total",
		"Slots of each schedule not run because its previous job had not finished (overlap skip).", scheduleLabels, nil)
	scheduleMissesDesc = prometheus.NewDesc("wasso_schedule_misses_total",
		"Slots of each schedule not run because they passed while no scheduler ran (missed policy).", scheduleLabels, nil)
	scheduleNextRunDesc = prometheus.NewDesc("wasso_schedule_next_run_timestamp_seconds",
		"Unix time of each schedule's next slot; 0 when it has none (disabled, expired, a one-off that ran). A value well in the past means no leader is running schedules.", scheduleLabels, nil)
	scheduleEnabledDesc = prometheus.NewDesc("wasso_schedule_enabled",
		"1 when the schedule is enabled.", scheduleLabels, nil)
	schedulePausedByFailuresDesc = prometheus.NewDesc("wasso_schedule_paused_by_failures",
		"1 when the scheduler itself paused the schedule after failures (disabled, paused_by = 'scheduler'); 0 otherwise.", scheduleLabels, nil)
)

// pausedByFailuresSQL tells, for every schedule, whether the scheduler
// paused it.
const pausedByFailuresSQL = `
SELECT name, coalesce(NOT enabled AND paused_by = $1, false) FROM wasso_schedule`

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- leaderDesc
	ch <- lostJobsDesc
	ch <- settlementOverdueDesc
	ch <- settlementOverdueEventsDesc
	if c.store != nil {
		for _, d := range []*prometheus.Desc{scheduleRunsDesc, scheduleSkipsDesc, scheduleMissesDesc, scheduleNextRunDesc, scheduleEnabledDesc, schedulePausedByFailuresDesc} {
			ch <- d
		}
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.collectJobs(ctx, ch); err != nil {
		c.a.logger.Warn("metrics: scrape", slog.String("error", err.Error()))
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
	}
	if l, err := c.a.leader(ctx, c.pool); err != nil {
		c.a.logger.Warn("metrics: scrape", slog.String("error", err.Error()))
		ch <- prometheus.NewInvalidMetric(leaderDesc, err)
	} else {
		v := 0.0
		if l != nil && l.ID == c.clientID() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, v)
	}
	if n, err := c.a.countLostJobs(ctx, c.pool); err != nil {
		c.a.logger.Warn("metrics: scrape", slog.String("error", err.Error()))
		ch <- prometheus.NewInvalidMetric(lostJobsDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(lostJobsDesc, prometheus.GaugeValue, float64(n))
	}
	if b, err := attendance.DueBacklog(ctx, c.pool, attendance.SettleParams{Lookback: c.a.cfg.Sweep.Lookback}); err != nil {
		c.a.logger.Warn("metrics: settlement backlog", slog.String("error", err.Error()))
		ch <- prometheus.NewInvalidMetric(settlementOverdueDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(settlementOverdueDesc, prometheus.GaugeValue, b.Oldest.Seconds())
		ch <- prometheus.MustNewConstMetric(settlementOverdueEventsDesc, prometheus.GaugeValue, float64(b.Events))
	}

	if c.store != nil {
		c.collectSchedules(ctx, ch)
	}
}

// collectJobs exports the cluster's jobs by queue and state.
func (c *dbCollector) collectJobs(ctx context.Context, ch chan<- prometheus.Metric) error {
	counts, err := c.a.countJobs(ctx, c.pool, nil, nil, nil)
	if err != nil {
		return err
	}
	type queueState struct{ queue, state string }
	byQueueState := map[queueState]int64{}
	for _, jc := range counts {
		byQueueState[queueState{jc.queue, jc.state}] += jc.n
	}
	for qs, n := range byQueueState {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), qs.queue, qs.state)
	}
	return nil
}

// collectSchedules exports the counters of every stored schedule, one
// scan of wasso_schedule (a handful of rows).
func (c *dbCollector) collectSchedules(ctx context.Context, ch chan<- prometheus.Metric) {
	stats, err := c.store.Stats(ctx, c.pool)
	if err != nil {
		c.a.logger.Warn("metrics: schedule stats", slog.String("error", err.Error()))
		ch <- prometheus.NewInvalidMetric(scheduleRunsDesc, err)
		return
	}
	for _, st := range stats {
		next, enabled := 0.0, 0.0
		if !st.NextRunAt.IsZero() {
			next = float64(st.NextRunAt.UnixMilli()) / 1000
		}
		if st.Enabled {
			enabled = 1
		}
		ch <- prometheus.MustNewConstMetric(scheduleRunsDesc, prometheus.CounterValue, float64(st.Runs), st.Name)
		ch <- prometheus.MustNewConstMetric(scheduleSkipsDesc, prometheus.CounterValue, float64(st.Skips), st.Name)
		ch <- prometheus.MustNewConstMetric(scheduleMissesDesc, prometheus.CounterValue, float64(st.Misses), st.Name)
		ch <- prometheus.MustNewConstMetric(scheduleNextRunDesc, prometheus.GaugeValue, next, st.Name)
		ch <- prometheus.MustNewConstMetric(scheduleEnabledDesc, prometheus.GaugeValue, enabled, st.Name)
	}
	if err := c.collectPausedByFailures(ctx, ch); err != nil {
		c.a.logger.Warn("metrics: schedules paused by failures", slog.String("error", err.Error()))
		ch <- prometheus.NewInvalidMetric(schedulePausedByFailuresDesc, err)
	}
}

// collectPausedByFailures exports wasso_schedule_paused_by_failures for
// every schedule (pausedByFailuresSQL).
func (c *dbCollector) collectPausedByFailures(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.pool.Query(ctx, pausedByFailuresSQL, schedule.PausedByScheduler)
	if err != nil {
		return fmt.Errorf("read schedules paused by failures: %w", err)
	}
	var (
		name   string
		paused bool
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &paused}, func() error {
		v := 0.0
		if paused {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(schedulePausedByFailuresDesc, prometheus.GaugeValue, v, name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read schedules paused by failures: %w", err)
	}
	return nil
}
