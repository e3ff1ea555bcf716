package runner_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// deployDir holds the alerting rules and the dashboard the tests check.
const deployDir = "../examples/deploy"

// promtool returns the path of Prometheus's promtool. Without it the test
// fails, since the rules would otherwise go unchecked: .ci/run installs
// it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: install the prometheus package (apt-get install -y prometheus, as .ci/run does) to check examples/deploy/alerts.yml")
	}
	return path
}

// alertRules is the part of a Prometheus rules file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readAlertRules(t *testing.T) alertRules {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "alerts.yml"))
	require.NoError(t, err)
	var rules alertRules
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	return rules
}

// dashboardExprs returns the PromQL expression of every target of every
// panel (rows' panels included) of the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "grafana-dashboard.json"))
	require.NoError(t, err)
	type panel struct {
		Title      string           `json:"title"`
		Datasource *json.RawMessage `json:"datasource"`
		Targets    []struct {
			Expr       string `json:"expr"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash), "grafana-dashboard.json is valid JSON")
	require.True(t, slices.ContainsFunc(dash.Templating.List, func(v struct{ Name, Type, Query string }) bool {
		return v.Name == "DS_PROMETHEUS" && v.Type == "datasource" && v.Query == "prometheus"
	}), "the dashboard has a DS_PROMETHEUS data source variable")
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, raw := range panels {
			var p panel
			require.NoError(t, json.Unmarshal(raw, &p))
			for _, target := range p.Targets {
				require.Equal(t, "${DS_PROMETHEUS}", target.Datasource.UID, "panel %q: data source", p.Title)
				require.NotEmpty(t, target.Expr, "panel %q", p.Title)
				exprs = append(exprs, target.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return exprs
}

var (
	// promqlStrings, promqlBraces and promqlBrackets are the parts of an
	// expression that hold no metric name: string literals, label
	// matchers, ranges and subqueries.
	promqlStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlBraces   = regexp.MustCompile(`\{[^{}]*\}`)
	promqlBrackets = regexp.MustCompile(`\[[^\[\]]*\]`)
	// promqlLabelLists are the label lists of aggregations and vector
	// matching.
	promqlLabelLists = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	// promqlIdents are identifiers, or parts of numbers (1e3), durations
	// (5m) and Grafana variables ($__rate_interval) when a character of
	// those comes first.
	promqlIdents = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlWords  = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "Inf", "NaN"}
)

// metricNames returns the metric names a PromQL expression selects.
func metricNames(expr string) []string {
	expr = promqlStrings.ReplaceAllString(expr, " ")
	expr = promqlBraces.ReplaceAllString(expr, " ")
	expr = promqlBrackets.ReplaceAllString(expr, " ")
	expr = promqlLabelLists.ReplaceAllString(expr, " ")
	var names []string
	for _, loc := range promqlIdents.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsRune("0123456789.$", rune(expr[loc[0]-1])) {
			continue // a number, a duration or a variable
		}
		if strings.HasPrefix(strings.TrimLeft(expr[loc[1]:], " \t\n"), "(") {
			continue // a function or an aggregation
		}
		if slices.Contains(promqlWords, name) || slices.Contains(names, name) {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum(wasso_leader) == 0 or absent(wasso_leader)`:                                                                  {"wasso_leader"},
		`max by (schedule) (increase(wasso_schedule_misses_total{schedule!="x"}[15m])) > 0`:                               {"wasso_schedule_misses_total"},
		`histogram_quantile(0.99, sum by (le, kind) (rate(wasso_job_duration_seconds_bucket[$__rate_interval])))`:         {"wasso_job_duration_seconds_bucket"},
		`sum(rate(a_sum[5m])) / on (kind) group_left (x) sum(rate(b_count[5m] offset 1h)) and bool c{l="by(x)"} unless d`: {"a_sum", "b_count", "c", "d"},
		`time() - max(wasso_sweep_last_success_timestamp_seconds > 0) * 1e3`:                                              {"wasso_sweep_last_success_timestamp_seconds"},
	} {
		require.Equal(t, want, metricNames(expr), expr)
	}
}

// TestAlertRules: the alerting rules pass promtool's check and their unit
// tests (alerts_test.yml), and each alert has a severity, a summary, a
// description and a runbook that is a section of docs/operations.md.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	bin := promtool(t)

	cmd := exec.Command(bin, "check", "rules", "alerts.yml")
	cmd.Dir = deployDir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check rules alerts.yml:\n%s", out)
	require.Contains(t, string(out), "SUCCESS")

	cmd = exec.Command(bin, "test", "rules", "alerts_test.yml")
	cmd.Dir = deployDir
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "promtool test rules alerts_test.yml:\n%s", out)
	require.Contains(t, string(out), "SUCCESS")

	ops, err := os.ReadFile("../docs/operations.md")
	require.NoError(t, err)
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(ops), -1) {
		anchor := strings.ToLower(m[1])
		anchor = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(anchor, "")
		anchors[strings.ReplaceAll(anchor, " ", "-")] = true
	}
	var alerts []string
	for _, g := range readAlertRules(t).Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			page, anchor, ok := strings.Cut(r.Annotations["runbook_url"], "#")
			require.True(t, ok && page == "docs/operations.md", "%s: runbook_url %q", r.Alert, r.Annotations["runbook_url"])
			require.True(t, anchors[anchor], "%s: docs/operations.md has no section #%s", r.Alert, anchor)
			require.Contains(t, string(ops), "`"+r.Alert+"`", "docs/operations.md names %s", r.Alert)
		}
	}
	require.Subset(t, alerts, []string{"WassoNoLeader", "WassoScheduleMissedSlots", "WassoSchedulePausedByFailures",
		"WassoJobsHeldByLostRunner", "WassoSettlementLagging", "WassoNotificationsNotDelivered"})
}

// exportedNames returns the names of the samples a /metrics exposition
// can hold: each family's name, and for histograms and summaries the
// names of their series.
func exportedNames(body string) map[string]bool {
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(body, -1) {
		name, kind := m[1], m[2]
		switch kind {
		case "histogram":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "summary":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// TestAlertMetrics: every metric the alerting rules and the dashboard
// name is one a real runner exports on /metrics, and the series the
// alerts watch say what they should: an event left unsettled, a schedule
// paused by the scheduler, jobs held by a lost runner and their rescue.
// The runner settles nothing by itself here (no exact deadlines, the
// sweep schedule disabled), so the backlog stays until the test sweeps.
func TestAlertMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})

	// An event whose deadline passed two minutes ago, by the database
	// clock.
	var now time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now))
	club, err := seed.CreateClub(ctx, db.Pool, "Club "+t.Name(), 2, now.Add(-48*time.Hour))
	require.NoError(t, err)
	_, err = seed.CreateEventDueAt(ctx, db.Pool, club.GenerationID, now.Add(-2*time.Minute))
	require.NoError(t, err)

	res := runCLI(t, cliOpts{}, args([]string{"setup"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	res = runCLI(t, cliOpts{}, args([]string{"schedule", "disable", "attendance-sweep"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	res = runCLI(t, cliOpts{}, args([]string{"schedule", "add", "nightly", "--kind", "attendance.sweep", "--cron", "0 3 * * *", "--disabled"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())

	p := startRunner(t, db, cliOpts{}, "--no-deadlines")
	base := p.baseURL(t)
	scrape := func() string {
		code, body, err := tryHTTP("GET", base+"/metrics", nil, "", "")
		if err != nil || code != http.StatusOK {
			return ""
		}
		return body
	}
	var metrics string
	waitFor(t, p, time.Minute, "the runner to lead, with the backlog in /metrics", func() bool {
		metrics = scrape()
		return metricValue(metrics, `wasso_leader`) == 1 && metricValue(metrics, `wasso_settlement_overdue_events`) == 1
	})
	require.GreaterOrEqual(t, metricValue(metrics, `wasso_settlement_overdue_seconds`), 120.0)
	require.Less(t, metricValue(metrics, `wasso_settlement_overdue_seconds`), 600.0)
	require.Equal(t, 0.0, metricValue(metrics, `wasso_lost_runner_jobs`))
	require.Equal(t, 0.0, metricValue(metrics, `wasso_lost_runner_jobs_rescued_total`))
	require.Equal(t, 0.0, metricValue(metrics, `wasso_jobs_discarded_total{kind="attendance.sweep"}`), "job series of the runner's kinds exist before any job")
	// Disabled by an operator.
	require.Equal(t, 0.0, metricValue(metrics, `wasso_schedule_paused_by_failures{schedule="attendance-sweep"}`))
	require.Equal(t, 0.0, metricValue(metrics, `wasso_schedule_paused_by_failures{schedule="nightly"}`))

	// The scheduler pausing a schedule after failures records itself as
	// the pauser; an operator's pause with a note is not counted.
	res = runCLI(t, cliOpts{}, args([]string{"schedule", "disable", "attendance-sweep", "--by", "scheduler", "--note", "paused after 3 failed jobs"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	res = runCLI(t, cliOpts{}, args([]string{"schedule", "disable", "nightly", "--by", "admin", "--note", "maintenance"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	waitFor(t, p, time.Minute, "the paused schedule in /metrics", func() bool {
		metrics = scrape()
		return metricValue(metrics, `wasso_schedule_paused_by_failures{schedule="attendance-sweep"}`) == 1
	})
	require.Equal(t, 0.0, metricValue(metrics, `wasso_schedule_paused_by_failures{schedule="nightly"}`), "paused by an operator")

	// Sweeping settles the backlog.
	res = runCLI(t, cliOpts{}, args([]string{"sweep"}, dbArgs(db))...)
	require.Equal(t, 0, res.code, res.String())
	waitFor(t, p, time.Minute, "no backlog in /metrics", func() bool {
		metrics = scrape()
		return metricValue(metrics, `wasso_settlement_overdue_events`) == 0
	})
	require.Equal(t, 0.0, metricValue(metrics, `wasso_settlement_overdue_seconds`))

	// A job running on a runner that then goes silent. The test holds
	// the job's row lock, so the leader's rescuer waits on it while
	// /metrics counts the job; once the lock is let go, the job is
	// rescued (discarded: its one attempt is spent) and counted so.
	_, err = db.Pool.Exec(ctx, `INSERT INTO wasso_runner (client_id, hostname, pid, version, started_at, heartbeat_at)
		VALUES ('lost-runner', 'gone', 1, 'test', now(), now())`)
	require.NoError(t, err)
	var jobID int64
	require.NoError(t, db.Pool.QueryRow(ctx, `
		INSERT INTO river_job (args, kind, max_attempts, queue, state, attempt, attempted_at, attempted_by)
		VALUES ('{}', 'test.lost', 1, 'lost', 'running', 1, now(), '{lost-runner}') RETURNING id`).Scan(&jobID))
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // released below; a no-op then
	_, err = tx.Exec(ctx, `SELECT 1 FROM river_job WHERE id = $1 FOR UPDATE`, jobID)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE wasso_runner SET heartbeat_at = now() - interval '1 hour' WHERE client_id = 'lost-runner'`)
	require.NoError(t, err)
	waitFor(t, p, time.Minute, "the lost runner's job in /metrics", func() bool {
		metrics = scrape()
		return metricValue(metrics, `wasso_lost_runner_jobs`) == 1
	})
	require.NoError(t, tx.Rollback(ctx))
	waitFor(t, p, time.Minute, "the rescue in /metrics", func() bool {
		metrics = scrape()
		return metricValue(metrics, `wasso_lost_runner_jobs_rescued_total`) == 1 && metricValue(metrics, `wasso_lost_runner_jobs`) == 0
	})
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE id = $1 AND state = 'discarded'`, jobID))

	// Every metric of the rules and the dashboard is exported, now that
	// there are jobs (wasso_jobs has a series for each queue and state
	// that holds any).
	exported := exportedNames(metrics)
	check := func(where, expr string) {
		names := metricNames(expr)
		require.NotEmpty(t, names, "%s: %s names no metric", where, expr)
		for _, name := range names {
			require.True(t, exported[name], "%s: %s uses %s, which the runner does not export", where, expr, name)
		}
	}
	for _, g := range readAlertRules(t).Groups {
		for _, r := range g.Rules {
			check("alerts.yml "+r.Alert, r.Expr)
		}
	}
	for _, expr := range dashboardExprs(t) {
		check("grafana-dashboard.json", expr)
	}
}
