package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// schedulesScreenshot is where TestSchedulesPageInChromium leaves a copy
// of its screenshot of the page, for people to look at.
const schedulesScreenshot = "/tmp/schedules-page.png"

// TestSchedulesPageInChromium: the schedules page, served by the runner
// under /schedules/, renders in a real headless Chromium with the
// schedules of the database, in their zones; its Disable and Run now
// buttons change the database and the page says so; the last run links
// to its job in River UI. A schedule's detail view shows its next slots,
// its runs linked to River UI, and the note its Disable form records.
// The list fits a 1280x800 window. A form on another site cannot press
// them. A
// runner with credentials and read-only mode serves the page only with
// basic auth, without buttons, and refuses its POSTs.
// Set WASSO_TEST_SCREENSHOTS to a directory to keep the screenshots.
func TestSchedulesPageInChromium(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s not found: install Chromium (apt-get install -y chromium) to run the browser test", chromiumPath)
	}
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds()})
	require.NoError(t, err)
	for _, s := range []schedule.Schedule{
		{Name: "nightly-report", Kind: attendance.SweepKind, Cron: "30 3 * * *", TimeZone: "Asia/Seoul", Enabled: true,
			Description: "Sweep at 03:30 Seoul time, after the evening events"},
		{Name: "hourly-sweep", Kind: attendance.SweepKind, Every: time.Hour, TimeZone: "America/New_York", Enabled: true,
			Description: "Catch-up sweep <every hour>"},
		{Name: "monday-digest", Kind: attendance.SweepKind, Cron: "0 9 * * 1", TimeZone: "Europe/Paris",
			Description: "Disabled until the digest ships"},
	} {
		_, err := store.Create(ctx, db.Pool, s)
		require.NoError(t, err)
	}

	p := startRunner(t, db, cliOpts{})
	base := p.baseURL(t)
	require.Equal(t, base+"/schedules/", p.waitLog(t, "wasso-runner started", time.Minute)["schedules_page"], "the start line gives the page's URL")

	browser := newChromium(t)
	b := &browserPage{t: t, ctx: browser}
	b.open(base + "/schedules")
	require.True(t, strings.HasSuffix(b.location(), "/schedules/"), b.location())

	// Each row shows the schedule, its times in its own zone. The
	// runner's scheduler may run a slot meanwhile (hourly-sweep at the top
	// of the hour): the times are checked when the row read before the
	// page and the one read after agree.
	for _, name := range []string{"nightly-report", "hourly-sweep", "monday-digest"} {
		before, err := store.Get(ctx, db.Pool, name)
		require.NoError(t, err)
		b.open(base + "/schedules/")
		row := b.rowText(name)
		sched, err := store.Get(ctx, db.Pool, name)
		require.NoError(t, err)
		want := []string{name, attendance.SweepKind, sched.TimeZone, "disabled"}
		if sched.Enabled {
			want[len(want)-1] = "enabled"
		}
		switch {
		case !sched.UpdatedAt.Equal(before.UpdatedAt):
			t.Logf("%s ran while the page loaded: its times are not checked", name)
		case sched.Enabled:
			loc, err := time.LoadLocation(sched.TimeZone)
			require.NoError(t, err)
			want = append(want, sched.NextRunAt.In(loc).Format("2006-01-02 15:04:05 MST"))
			fallthrough
		default:
			if sched.LastRunAt.IsZero() {
				want = append(want, "never")
			}
		}
		for _, w := range want {
			require.Contains(t, row, w, "row of %s", name)
		}
	}
	require.Contains(t, b.rowText("nightly-report"), "30 3 * * *")
	require.Contains(t, b.rowText("nightly-report"), "KST")
	require.Contains(t, b.rowText("hourly-sweep"), "every 1h")
	require.Contains(t, b.rowText("monday-digest"), "0 9 * * 1")
	require.Equal(t, 1, b.count(`tr[data-name="monday-digest"] button[data-action="enable"]`))
	require.Equal(t, 0, b.count(`tr[data-name="monday-digest"] button[data-action="disable"]`))

	// Disable one: the database and the page follow.
	b.click(`tr[data-name="hourly-sweep"] button[data-action="disable"]`)
	b.waitText("#flash", "Disabled hourly-sweep")
	hourly, err := store.Get(ctx, db.Pool, "hourly-sweep")
	require.NoError(t, err)
	require.False(t, hourly.Enabled)
	require.True(t, hourly.NextRunAt.IsZero())
	require.Contains(t, b.rowText("hourly-sweep"), "disabled")
	require.Equal(t, 1, b.count(`tr[data-name="hourly-sweep"] button[data-action="enable"]`))

	// Run another now: one job, with the schedule and its slot in its
	// metadata, shown as the last run and linked to River UI.
	b.click(`tr[data-name="nightly-report"] button[data-action="run-now"]`)
	b.waitText("#flash", "Enqueued job")
	nightly, err := store.Get(ctx, db.Pool, "nightly-report")
	require.NoError(t, err)
	require.Equal(t, int64(1), nightly.TotalRunCount)
	require.NotZero(t, nightly.LastJobID)
	require.True(t, nightly.Enabled, "run now leaves the schedule as it was")
	var kind string
	var metadata map[string]any
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT kind, metadata FROM river_job WHERE id = $1`, nightly.LastJobID).Scan(&kind, &metadata))
	require.Equal(t, attendance.SweepKind, kind)
	require.Equal(t, "nightly-report", metadata["schedule"])
	require.Equal(t, schedule.FormatSlot(nightly.LastRunAt), metadata["slot"])
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE metadata->>'schedule' = 'nightly-report'`))
	require.Contains(t, b.text("#flash"), fmt.Sprintf("Enqueued job %d for nightly-report", nightly.LastJobID))
	seoul, err := time.LoadLocation("Asia/Seoul")
	require.NoError(t, err)
	row := b.rowText("nightly-report")
	require.Contains(t, row, nightly.LastRunAt.In(seoul).Format("2006-01-02 15:04:05 KST"), "last run in Seoul time")
	require.Contains(t, row, fmt.Sprintf("job %d", nightly.LastJobID))
	jobHref := fmt.Sprintf("/riverui/jobs/%d", nightly.LastJobID)
	require.Equal(t, jobHref, b.eval(`document.querySelector('tr[data-name="nightly-report"] a.job').getAttribute("href")`))
	b.screenshot("schedules.png", schedulesScreenshot)

	// The job's link opens it in River UI.
	b.click(`tr[data-name="nightly-report"] a.job`)
	b.waitText("body", attendance.SweepKind)
	require.True(t, strings.HasSuffix(b.location(), jobHref), b.location())

	// The name opens the detail view: settings, the next ten slots in
	// the schedule's zone with their offset, the run linked to River UI.
	b.open(base + "/schedules/")
	b.click(`tr[data-name="nightly-report"] a.schedule-name`)
	b.waitText("#detail-name", "nightly-report")
	require.True(t, strings.HasSuffix(b.location(), "/schedules/nightly-report"), b.location())
	require.Contains(t, b.text("#settings"), "Sweep at 03:30 Seoul time, after the evening events", "the description is on the detail view")
	require.Contains(t, b.text("#settings"), "missed once · overlap skip")
	require.Equal(t, schedule.DescribeSlots, b.count("#next-slots tr.slot"))
	firstSlot := b.text("#next-slots tr.slot")
	require.Contains(t, firstSlot, "03:30:00 KST")
	require.Contains(t, firstSlot, "UTC+09:00")
	require.Zero(t, b.count("#next-slots tr.dst-change"), "Seoul keeps one offset all year")
	runRow := fmt.Sprintf(`#runs tr.run[data-job="%d"]`, nightly.LastJobID)
	require.Equal(t, 1, b.count(runRow))
	require.Equal(t, jobHref, b.eval(`document.querySelector(`+js(runRow+" a.job")+`).getAttribute("href")`))
	require.Contains(t, b.text(runRow), "/ 25", "attempts of its max")

	// Paused from its detail view with a note: the view, the list and
	// the database say who and why.
	b.open(base + "/schedules/hourly-sweep")
	b.click(`button[data-action="enable"]`)
	b.waitText("#flash", "Enabled hourly-sweep")
	require.True(t, strings.HasSuffix(b.location(), "/schedules/hourly-sweep?done=enable&schedule=hourly-sweep"), b.location())
	require.NoError(t, chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.CSS(`form.pause input[name="note"]`), "New York office closed for the holidays, back on January 5")))
	require.NoError(t, chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.CSS(`form.pause input[name="by"]`), "tester")))
	b.click(`form.pause button[data-action="disable"]`)
	b.waitText("#flash", "Disabled hourly-sweep")
	require.Contains(t, b.text("#pause-note"), "by tester: New York office closed for the holidays, back on January 5")
	hourly, err = store.Get(ctx, db.Pool, "hourly-sweep")
	require.NoError(t, err)
	require.False(t, hourly.Enabled)
	require.NotNil(t, hourly.Paused)
	require.Equal(t, "tester", hourly.Paused.By)
	require.Equal(t, "New York office closed for the holidays, back on January 5", hourly.Paused.Note)
	b.screenshot("schedule-detail.png", "")

	// The list fits a 1280x800 window, notes and all: no horizontal
	// scrolling, of the table's container or of the page.
	require.NoError(t, chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, 800)))
	b.open(base + "/schedules/")
	require.Contains(t, b.rowText("hourly-sweep"), "by tester: New York office closed for the holidays…", "the note, cut short")
	require.Equal(t, "1280", b.eval(`String(window.innerWidth)`))
	fits := b.eval(`(() => {
		const main = document.querySelector("main"), doc = document.documentElement;
		return [main.scrollWidth, main.clientWidth, doc.scrollWidth, doc.clientWidth].join(" ");
	})()`)
	var mainScroll, mainClient, docScroll, docClient int
	_, err = fmt.Sscan(fits, &mainScroll, &mainClient, &docScroll, &docClient)
	require.NoError(t, err, fits)
	require.LessOrEqual(t, mainScroll, mainClient, "the table's container does not scroll sideways at 1280 pixels")
	require.LessOrEqual(t, docScroll, docClient, "nor does the page")
	b.screenshot("schedules-1280.png", "")
	require.NoError(t, chromedp.Do(b.ctx, chromedp.EmulateViewport(1600, 1000)))

	// A form on another site posting to the page (cross-site request
	// forgery) is refused, and so is a script's request claiming to come
	// from another origin.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/schedules/monday-digest/enable"><button id="go">Win a prize</button></form>`, base)
	}))
	defer evil.Close()
	evilURL, err := url.Parse(evil.URL)
	require.NoError(t, err)
	b.open("http://localhost:" + evilURL.Port() + "/")
	b.click("#go")
	b.waitText("body", "cross-origin request refused")
	req, err := http.NewRequest(http.MethodPost, base+"/schedules/monday-digest/run-now", nil)
	require.NoError(t, err)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	digest, err := store.Get(ctx, db.Pool, "monday-digest")
	require.NoError(t, err)
	require.False(t, digest.Enabled, "the forged enable did nothing")
	require.Zero(t, digest.TotalRunCount, "the forged run now did nothing")

	// Read-only, with credentials, on a non-loopback address.
	const user, pass = "admin", "correct-horse-battery"
	creds := cliOpts{env: []string{"WASSO_HTTP_USERNAME=" + user, "WASSO_HTTP_PASSWORD=" + pass}}
	ro := startRunner(t, db, creds, "--read-only", "--http-addr", "0.0.0.0:0")
	roAddr, err := url.Parse(ro.baseURL(t))
	require.NoError(t, err)
	roBase := "http://127.0.0.1:" + roAddr.Port()
	for _, path := range []string{"/schedules/", "/schedules/api/schedules"} {
		code, _ := doHTTP(t, "GET", roBase+path, nil, "", "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = doHTTP(t, "GET", roBase+path, nil, user, "wrong")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, body := doHTTP(t, "GET", roBase+path, nil, user, pass)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}
	code, body := doHTTP(t, "GET", roBase+"/schedules/api/schedules", nil, user, pass)
	require.Equal(t, http.StatusOK, code)
	var list []schedule.Schedule
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	names := map[string]bool{}
	for _, s := range list {
		names[s.Name] = true
	}
	require.True(t, names["nightly-report"] && names["hourly-sweep"] && names["monday-digest"], body)
	for _, path := range []string{"/schedules/monday-digest/enable", "/schedules/nightly-report/disable", "/schedules/nightly-report/run-now"} {
		code, body := doHTTP(t, "POST", roBase+path, nil, user, pass)
		require.Equal(t, http.StatusForbidden, code, "%s: %s", path, body)
		require.Contains(t, body, "read-only")
		code, _ = doHTTP(t, "POST", roBase+path, nil, "", "")
		require.Equal(t, http.StatusUnauthorized, code, "auth comes first: %s", path)
	}

	// In the browser, with the credentials: the list without a button,
	// and a note saying why.
	roTab, cancelTab := chromedp.NewContext(browser)
	defer cancelTab()
	rob := &browserPage{t: t, ctx: roTab}
	rob.open("http://" + user + ":" + pass + "@127.0.0.1:" + roAddr.Port() + "/schedules/")
	rob.waitText("#read-only-note", "Read-only")
	require.Contains(t, rob.rowText("nightly-report"), "30 3 * * *")
	require.Contains(t, rob.rowText("hourly-sweep"), "disabled")
	require.Zero(t, rob.count("button"), "no buttons in read-only mode")
	require.Zero(t, rob.count("form"))
	rob.screenshot("schedules-read-only.png", "")

	after, err := store.Get(ctx, db.Pool, "nightly-report")
	require.NoError(t, err)
	require.True(t, after.Enabled, "read-only changed nothing")
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE metadata->>'schedule' = 'nightly-report'`))
	digest, err = store.Get(ctx, db.Pool, "monday-digest")
	require.NoError(t, err)
	require.False(t, digest.Enabled)
}

// newChromium starts a headless Chromium for the test, with the options
// of TestRiverUIInChromium.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // tests run as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1000),
		// No network but loopback here: keep Chromium from trying.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	return browser
}

// browserPage drives one tab.
type browserPage struct {
	t   *testing.T
	ctx context.Context
}

func (b *browserPage) open(u string) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Navigate(u)))
}

func (b *browserPage) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(b.t, err)
	return loc
}

// js quotes s as a JavaScript string.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

func (b *browserPage) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	require.NoError(b.t, err, expr)
	return v
}

// text is the rendered text of the first element selector matches, or ""
// when none does.
func (b *browserPage) text(selector string) string {
	b.t.Helper()
	return b.eval(`(document.querySelector(` + js(selector) + `) || {innerText: ""}).innerText`)
}

func (b *browserPage) rowText(name string) string {
	b.t.Helper()
	text := b.text(`tr[data-name=` + js(name) + `]`)
	require.NotEmpty(b.t, text, "no row for %s on the page:\n%s", name, b.text("body"))
	return text
}

func (b *browserPage) count(selector string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+js(selector)+`).length`))
	require.NoError(b.t, err)
	return n
}

func (b *browserPage) click(selector string) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(selector))), selector)
}

// waitText waits until the element selector matches shows want: pages
// load after a click, and River UI renders after its API calls return.
func (b *browserPage) waitText(selector, want string) {
	b.t.Helper()
	var text string
	require.Eventually(b.t, func() bool {
		var err error
		text, err = chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.querySelector(`+js(selector)+`) || {innerText: ""}).innerText`))
		return err == nil && strings.Contains(text, want)
	}, time.Minute, 100*time.Millisecond, "%s never showed %q; it shows:\n%s", selector, want, text)
}

// screenshot saves the page as a PNG in the test's directory (or
// WASSO_TEST_SCREENSHOTS), and a copy at also unless it is empty.
func (b *browserPage) screenshot(name, also string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	require.NoError(b.t, err)
	require.NotEmpty(b.t, png)
	dir := os.Getenv("WASSO_TEST_SCREENSHOTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	require.NoError(b.t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	if also != "" {
		require.NoError(b.t, os.WriteFile(also, png, 0o644))
	}
}
