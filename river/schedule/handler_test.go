package schedule_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
	"github.com/wasso/scheduler/river/schedule"
)

// handlerNow is the clock of the handler tests: 21:00 in Seoul, 07:00 in
// New York.
var handlerNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// scheduleServer is a schedules page under /schedules/ on an httptest
// server, over a store on a fresh schema at clock's time, with three
// schedules:
//
//   - nightly: cron 30 3 * * * in Asia/Seoul, enabled; its next run is
//     2025-03-02 03:30 KST (18:30 UTC);
//   - every-5m: every 5 minutes, America/New_York, enabled; next run
//     2025-03-01 07:00 EST (12:00 UTC, now);
//   - paused: every hour, UTC, disabled.
type scheduleServer struct {
	db    *wassotest.DB
	store *schedule.Store
	clock *testClock
	srv   *httptest.Server
}

func newScheduleServer(t *testing.T, readOnly bool) *scheduleServer {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{now: handlerNow}
	db, store := newScheduleStore(t, clock)
	for _, s := range []schedule.Schedule{
		{Name: "nightly", Kind: attendance.SweepKind, Cron: "30 3 * * *", TimeZone: "Asia/Seoul", Enabled: true,
			Description: `Nightly sweep <script>alert("x")</script>`},
		{Name: "every-5m", Kind: attendance.SweepKind, Every: 5 * time.Minute, TimeZone: "America/New_York", Enabled: true},
		{Name: "paused", Kind: attendance.SweepKind, Every: time.Hour, TimeZone: "UTC"},
	} {
		_, err := store.Create(ctx, db.Pool, s)
		require.NoError(t, err)
	}
	h, err := schedule.NewHandler(schedule.HandlerOpts{
		Store:         store,
		DB:            db.Pool,
		Prefix:        "/schedules",
		RiverUIPrefix: "/riverui",
		ReadOnly:      readOnly,
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/schedules/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &scheduleServer{db: db, store: store, clock: clock, srv: srv}
}

// noRedirects is a client that returns redirects instead of following
// them, so that tests see the 303 and its Location.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type handlerResponse struct {
	code   int
	header http.Header
	body   string
}

// do sends a request; headers are name, value pairs.
func (s *scheduleServer) do(t *testing.T, method, path string, headers ...string) handlerResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noRedirects.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return handlerResponse{code: resp.StatusCode, header: resp.Header, body: string(body)}
}

// post submits a button's form as a browser does: same-origin, accepting
// HTML.
func (s *scheduleServer) post(t *testing.T, path string) handlerResponse {
	t.Helper()
	return s.do(t, http.MethodPost, path, "Sec-Fetch-Site", "same-origin", "Origin", s.srv.URL, "Accept", "text/html,*/*;q=0.8")
}

func (s *scheduleServer) get(t *testing.T, name string) *schedule.Schedule {
	t.Helper()
	sched, err := s.store.Get(context.Background(), s.db.Pool, name)
	require.NoError(t, err)
	return sched
}

// rowOf returns the HTML of the table row of the schedule named.
func rowOf(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr id="schedule-` + regexp.QuoteMeta(name) + `".*?</tr>`).FindString(page)
	require.NotEmpty(t, m, "no row for %s in:\n%s", name, page)
	return m
}

func TestScheduleHandlerPage(t *testing.T) {
	t.Parallel()
	s := newScheduleServer(t, false)
	run, err := s.store.RunNow(context.Background(), s.db.Pool, "nightly")
	require.NoError(t, err)

	res := s.do(t, http.MethodGet, "/schedules/")
	require.Equal(t, http.StatusOK, res.code, res.body)
	require.Equal(t, "text/html; charset=utf-8", res.header.Get("Content-Type"))
	page := res.body

	nightly := rowOf(t, page, "nightly")
	require.Contains(t, nightly, "attendance.sweep")
	require.Contains(t, nightly, "30 3 * * *")
	require.Contains(t, nightly, "Asia/Seoul")
	require.Contains(t, nightly, "enabled")
	require.Contains(t, nightly, "2025-03-01 21:00:00 KST", "last run (run now at 12:00 UTC) in the schedule's zone")
	require.Contains(t, nightly, fmt.Sprintf(`<a class="job" href="/riverui/jobs/%d">job %d</a>`, run.JobID, run.JobID), "last run links to its job in River UI")
	require.Contains(t, nightly, "2025-03-02 03:30:00 KST", "next run in the schedule's zone")
	require.Contains(t, nightly, `title="2025-03-01T18:30:00Z"`, "UTC on hover")
	require.Contains(t, nightly, "in 6h 30m")
	require.Contains(t, nightly, `<td class="num runs">1</td>`)
	require.Contains(t, nightly, `<td class="num skipped">0</td>`)
	require.Contains(t, nightly, `<td class="num missed">0</td>`)
	require.NotContains(t, nightly, "Nightly sweep", "the description is on the detail view, not in the list")
	require.Contains(t, nightly, `<a class="schedule-name" href="/schedules/nightly"`, "the name opens the detail view")
	require.NotContains(t, page, "<script>", "no script anywhere")
	require.Contains(t, nightly, `action="/schedules/nightly/disable"`)
	require.Contains(t, nightly, `action="/schedules/nightly/run-now"`)
	require.NotContains(t, nightly, `data-action="enable"`, "an enabled schedule offers Disable, not Enable")

	every := rowOf(t, page, "every-5m")
	require.Contains(t, every, "every 5m")
	require.Contains(t, every, "America/New_York")
	require.Contains(t, every, "2025-03-01 07:00:00 EST", "next run in New York")
	require.Contains(t, every, "never", "no run yet")
	require.NotContains(t, every, "overdue")

	paused := rowOf(t, page, "paused")
	require.Contains(t, paused, "every 1h")
	require.Contains(t, paused, `<span class="badge off">disabled</span>`)
	require.Contains(t, paused, `data-action="enable"`)
	require.NotContains(t, paused, `data-action="disable"`)
	require.Contains(t, page, `<a href="/riverui/">River UI</a>`)
	require.NotContains(t, page, "read-only-note")

	// Ten minutes on with no scheduler: every-5m's 12:00 slot is past its
	// grace, and the page says so.
	s.clock.Set(handlerNow.Add(10 * time.Minute))
	page = s.do(t, http.MethodGet, "/schedules/").body
	require.Contains(t, rowOf(t, page, "every-5m"), "overdue")
	require.NotContains(t, rowOf(t, page, "nightly"), "overdue")
	require.NotContains(t, rowOf(t, page, "paused"), "overdue")

	// The one inline style sheet is what the CSP allows, and nothing else
	// runs or frames the page.
	csp := res.header.Get("Content-Security-Policy")
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(page)
	require.Len(t, style, 2)
	sum := sha256.Sum256([]byte(style[1]))
	require.Contains(t, csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	require.Contains(t, csp, "default-src 'none'")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Equal(t, "DENY", res.header.Get("X-Frame-Options"))
	require.Equal(t, "no-store", res.header.Get("Cache-Control"))

	// Without the trailing slash: a redirect to the page (the server's
	// mux makes it, the handler being mounted at /schedules/).
	res = s.do(t, http.MethodGet, "/schedules")
	require.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect}, res.code)
	require.Equal(t, "/schedules/", res.header.Get("Location"))
}

func TestScheduleHandlerActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newScheduleServer(t, false)

	// Disable: 303 back to the page, whose flash says so.
	res := s.post(t, "/schedules/nightly/disable")
	require.Equal(t, http.StatusSeeOther, res.code, res.body)
	loc := res.header.Get("Location")
	require.Equal(t, "/schedules/?done=disable&schedule=nightly", loc)
	require.False(t, s.get(t, "nightly").Enabled)
	require.True(t, s.get(t, "nightly").NextRunAt.IsZero())
	page := s.do(t, http.MethodGet, loc).body
	require.Contains(t, page, "Disabled <strong>nightly</strong>")
	require.Contains(t, rowOf(t, page, "nightly"), `data-action="enable"`)

	// Enable: enabled again, its next run its first slot from now.
	res = s.post(t, "/schedules/nightly/enable")
	require.Equal(t, http.StatusSeeOther, res.code, res.body)
	require.Equal(t, "/schedules/?done=enable&schedule=nightly", res.header.Get("Location"))
	got := s.get(t, "nightly")
	require.True(t, got.Enabled)
	require.Equal(t, time.Date(2025, 3, 1, 18, 30, 0, 0, time.UTC), got.NextRunAt)

	// Run now, on a disabled schedule too: one job, with the schedule and
	// the slot (now) in its metadata.
	res = s.post(t, "/schedules/paused/run-now")
	require.Equal(t, http.StatusSeeOther, res.code, res.body)
	runLoc, err := url.Parse(res.header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "run-now", runLoc.Query().Get("done"))
	require.Equal(t, "paused", runLoc.Query().Get("schedule"))
	paused := s.get(t, "paused")
	require.NotZero(t, paused.LastJobID)
	require.Equal(t, fmt.Sprint(paused.LastJobID), runLoc.Query().Get("job"))
	require.Equal(t, int64(1), paused.TotalRunCount)
	require.False(t, paused.Enabled, "run now does not enable")
	var kind string
	var metadata map[string]any
	require.NoError(t, s.db.Pool.QueryRow(ctx, `SELECT kind, metadata FROM river_job WHERE id = $1`, paused.LastJobID).Scan(&kind, &metadata))
	require.Equal(t, attendance.SweepKind, kind)
	require.Equal(t, "paused", metadata["schedule"])
	require.Equal(t, "2025-03-01T12:00:00Z", metadata["slot"])
	require.Equal(t, []string{"2025-03-01T12:00:00Z"}, scheduledJobs(t, s.db, "paused"))
	page = s.do(t, http.MethodGet, runLoc.String()).body
	require.Contains(t, page, fmt.Sprintf(`Enqueued <a href="/riverui/jobs/%d">job %d</a> for <strong>paused</strong>`, paused.LastJobID, paused.LastJobID))
	require.Contains(t, rowOf(t, page, "paused"), "2025-03-01 12:00:00 UTC")

	// A flash is only ever the template's text: a crafted link shows
	// nothing.
	page = s.do(t, http.MethodGet, "/schedules/?done=phish&schedule=nightly").body
	require.NotContains(t, page, `id="flash"`)
	page = s.do(t, http.MethodGet, "/schedules/?done=disable&schedule="+url.QueryEscape("<b>x</b>")).body
	require.NotContains(t, page, `id="flash"`)

	// An unknown name: a readable error on the page, with a 404, and
	// nothing done.
	jobsBefore := handlerCount(t, s.db, `SELECT count(*) FROM river_job`)
	for _, action := range []string{"enable", "disable", "run-now"} {
		res = s.post(t, "/schedules/no-such-schedule/"+action)
		require.Equal(t, http.StatusNotFound, res.code, action)
		require.Equal(t, "text/html; charset=utf-8", res.header.Get("Content-Type"))
		require.Contains(t, res.body, `No schedule is named &#34;no-such-schedule&#34;`, action)
		require.Contains(t, res.body, `<tr id="schedule-nightly"`, "the page with its list, not a bare error")
	}
	require.Equal(t, jobsBefore, handlerCount(t, s.db, `SELECT count(*) FROM river_job`))

	// An enable the store refuses (the schedule expired while disabled):
	// 422 and the store's reason on the page.
	_, err = s.store.Create(ctx, s.db.Pool, schedule.Schedule{
		Name: "expiring", Kind: attendance.SweepKind, Every: time.Minute, ExpiresAt: handlerNow.Add(time.Hour),
	})
	require.NoError(t, err)
	s.clock.Set(handlerNow.Add(2 * time.Hour))
	res = s.post(t, "/schedules/expiring/enable")
	require.Equal(t, http.StatusUnprocessableEntity, res.code, res.body)
	require.Contains(t, res.body, "Could not enable expiring")
	require.Contains(t, res.body, "no slot is left before it")
	detail := s.do(t, http.MethodGet, "/schedules/expiring").body
	require.Contains(t, detail, "<th>Until</th>", "expiry on the detail view")
	require.Contains(t, detail, "<time title=\"2025-03-01T13:00:00Z\">2025-03-01 22:00:00 KST</time>", "in the store's default zone")
	require.False(t, s.get(t, "expiring").Enabled)

	// Scripts asking for JSON get JSON.
	res = s.do(t, http.MethodPost, "/schedules/every-5m/disable", "Accept", "application/json")
	require.Equal(t, http.StatusOK, res.code, res.body)
	var disabled struct {
		Schedule schedule.Schedule `json:"schedule"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &disabled))
	require.Equal(t, "every-5m", disabled.Schedule.Name)
	require.False(t, disabled.Schedule.Enabled)
	res = s.do(t, http.MethodPost, "/schedules/every-5m/run-now", "Accept", "application/json")
	require.Equal(t, http.StatusOK, res.code, res.body)
	var ran struct {
		Schedule string `json:"schedule"`
		JobID    int64  `json:"job_id"`
		Slot     string `json:"slot"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &ran))
	require.Equal(t, "every-5m", ran.Schedule)
	require.Equal(t, s.get(t, "every-5m").LastJobID, ran.JobID)
	require.Equal(t, "2025-03-01T14:00:00Z", ran.Slot)
	res = s.do(t, http.MethodPost, "/schedules/nope/run-now", "Accept", "application/json")
	require.Equal(t, http.StatusNotFound, res.code)
	require.JSONEq(t, `{"message": "No schedule is named \"nope\": it may have been deleted or renamed. Nothing was done."}`, res.body)

	// GET is not a way to act.
	res = s.do(t, http.MethodGet, "/schedules/nightly/disable")
	require.Equal(t, http.StatusMethodNotAllowed, res.code)
	require.True(t, s.get(t, "nightly").Enabled)
}

func TestScheduleHandlerReadOnly(t *testing.T) {
	t.Parallel()
	s := newScheduleServer(t, true)

	res := s.do(t, http.MethodGet, "/schedules/")
	require.Equal(t, http.StatusOK, res.code, res.body)
	require.Contains(t, res.body, `id="read-only-note"`)
	require.Contains(t, res.body, "Read-only")
	require.NotContains(t, res.body, "<form")
	require.NotContains(t, res.body, "<button")
	require.NotContains(t, res.body, "<th>Actions</th>")
	require.Contains(t, rowOf(t, res.body, "nightly"), "2025-03-02 03:30:00 KST", "the list is all there")

	for _, path := range []string{"/schedules/nightly/disable", "/schedules/paused/enable", "/schedules/paused/run-now"} {
		res = s.post(t, path)
		require.Equal(t, http.StatusForbidden, res.code, path)
		require.Contains(t, res.body, "read-only", path)
		res = s.do(t, http.MethodPost, path, "Accept", "application/json")
		require.Equal(t, http.StatusForbidden, res.code, path)
		require.Contains(t, res.body, "read-only", path)
	}
	require.True(t, s.get(t, "nightly").Enabled)
	require.False(t, s.get(t, "paused").Enabled)
	require.Zero(t, handlerCount(t, s.db, `SELECT count(*) FROM river_job`))

	res = s.do(t, http.MethodGet, "/schedules/api/schedules")
	require.Equal(t, http.StatusOK, res.code, "reading is allowed")
}

func TestScheduleHandlerCrossOrigin(t *testing.T) {
	t.Parallel()
	s := newScheduleServer(t, false)

	for _, tc := range []struct {
		name    string
		headers []string
	}{
		{"Sec-Fetch-Site cross-site", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}},
		{"Sec-Fetch-Site same-site", []string{"Sec-Fetch-Site", "same-site", "Origin", "http://other.127.0.0.1.nip.io"}},
		{"Origin only", []string{"Origin", "https://evil.example"}},
	} {
		for _, path := range []string{"/schedules/nightly/disable", "/schedules/paused/enable", "/schedules/nightly/run-now"} {
			res := s.do(t, http.MethodPost, path, tc.headers...)
			require.Equal(t, http.StatusForbidden, res.code, "%s: %s", tc.name, path)
			require.Contains(t, res.body, "cross-origin", "%s: %s", tc.name, path)
		}
	}
	require.True(t, s.get(t, "nightly").Enabled, "nothing was done")
	require.False(t, s.get(t, "paused").Enabled)
	require.Zero(t, handlerCount(t, s.db, `SELECT count(*) FROM river_job`))

	// The same request from the page's own origin goes through, and so
	// does one with neither header (curl, a script).
	res := s.do(t, http.MethodPost, "/schedules/nightly/disable", "Origin", s.srv.URL)
	require.Equal(t, http.StatusSeeOther, res.code, res.body)
	res = s.do(t, http.MethodPost, "/schedules/nightly/enable")
	require.Equal(t, http.StatusSeeOther, res.code, res.body)
	require.True(t, s.get(t, "nightly").Enabled)
}

func TestScheduleHandlerJSON(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newScheduleServer(t, false)
	_, err := s.store.RunNow(ctx, s.db.Pool, "nightly")
	require.NoError(t, err)

	res := s.do(t, http.MethodGet, "/schedules/api/schedules")
	require.Equal(t, http.StatusOK, res.code, res.body)
	require.Equal(t, "application/json", res.header.Get("Content-Type"))
	var list []schedule.Schedule
	require.NoError(t, json.Unmarshal([]byte(res.body), &list))
	want, err := s.store.List(ctx, s.db.Pool)
	require.NoError(t, err)
	require.Equal(t, want, list, "the store's list, as Schedule JSON")
	var raw []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.body), &raw))
	require.Equal(t, "every-5m", raw[0]["name"])
	require.Equal(t, "5m0s", raw[0]["every"])
	require.Equal(t, "America/New_York", raw[0]["time_zone"])
	require.Equal(t, "nightly", raw[1]["name"])
	require.Equal(t, "30 3 * * *", raw[1]["cron"])
	require.Equal(t, "2025-03-01T18:30:00Z", raw[1]["next_run_at"])
	require.Equal(t, "2025-03-01T12:00:00Z", raw[1]["last_run_at"])
	require.EqualValues(t, 1, raw[1]["total_run_count"])

	res = s.do(t, http.MethodGet, "/schedules/api/schedules/paused")
	require.Equal(t, http.StatusOK, res.code, res.body)
	var one schedule.Schedule
	require.NoError(t, json.Unmarshal([]byte(res.body), &one))
	require.Equal(t, want[2], one)
	res = s.do(t, http.MethodGet, "/schedules/api/schedules/nope")
	require.Equal(t, http.StatusNotFound, res.code)
	require.JSONEq(t, `{"message": "no schedule is named \"nope\""}`, res.body)

	// No schedules: an empty array, not null.
	for _, sched := range want {
		require.NoError(t, s.store.Delete(ctx, s.db.Pool, sched.Name))
	}
	res = s.do(t, http.MethodGet, "/schedules/api/schedules")
	require.Equal(t, http.StatusOK, res.code)
	require.JSONEq(t, `[]`, res.body)
	res = s.do(t, http.MethodGet, "/schedules/")
	require.Contains(t, res.body, "No schedules.")
}

// TestScheduleHandlerErrors: a bad configuration is refused, and a
// database without the schedule tables is a message on the page, not a
// bare 500.
func TestScheduleHandlerErrors(t *testing.T) {
	t.Parallel()
	store, err := schedule.NewStore(schedule.StoreConfig{Kinds: wassoriver.ScheduleKinds()})
	require.NoError(t, err)
	db := wassotest.NewDB(t, wassotest.Options{Bare: true})

	for _, opts := range []schedule.HandlerOpts{
		{DB: db.Pool},
		{Store: store},
		{Store: store, DB: db.Pool, Prefix: "schedules"},
		{Store: store, DB: db.Pool, Prefix: "/sched/{name}"},
	} {
		_, err := schedule.NewHandler(opts)
		require.ErrorIs(t, err, schedule.ErrInvalidConfig)
	}

	// Mounted at the root, with no River UI: no job links.
	h, err := schedule.NewHandler(schedule.HandlerOpts{Store: store, DB: db.Pool, Prefix: "/"})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Contains(t, rec.Body.String(), "Could not list the schedules")
	require.Contains(t, rec.Body.String(), "scheduler schema missing: relation")
	require.Contains(t, rec.Body.String(), "wasso_schedule")
	require.NotContains(t, rec.Body.String(), "River UI")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/schedules", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Contains(t, rec.Body.String(), "scheduler schema missing: relation")

	// The store's error names the missing table, for the program to say
	// what to run (wasso-runner says migrate up).
	_, err = store.List(context.Background(), db.Pool)
	require.ErrorIs(t, err, attendance.ErrSchemaMissing)
	var missing *attendance.SchemaMissingError
	require.ErrorAs(t, err, &missing)
	require.Equal(t, "relation", missing.Kind)
	require.Equal(t, "wasso_schedule", missing.Name)
	require.NotContains(t, err.Error(), "migrate", "the library names no command")
}

// handlerCount returns the result of a count query.
func handlerCount(t *testing.T, db *wassotest.DB, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

// TestScheduleHandlerDetail: a schedule's detail view shows its
// settings, its next slots with their UTC offsets (a daylight saving time
// change marked), its runs linked to River UI, and its pause note; its
// Disable form records a note and comes back to it; the JSON API gives
// the same.
func TestScheduleHandlerDetail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newScheduleServer(t, false)
	// New York springs forward on 2025-03-09: 09:00 EST is 14:00 UTC,
	// 09:00 EDT 13:00 UTC.
	_, err := s.store.Create(ctx, s.db.Pool, schedule.Schedule{
		Name: "ny-morning", Kind: attendance.SweepKind, Cron: "0 9 * * *", TimeZone: "America/New_York", Enabled: true,
		Args: json.RawMessage(`{"lookback": 3600000000000}`),
	})
	require.NoError(t, err)
	run, err := s.store.RunNow(ctx, s.db.Pool, "ny-morning")
	require.NoError(t, err)

	res := s.do(t, http.MethodGet, "/schedules/ny-morning")
	require.Equal(t, http.StatusOK, res.code, res.body)
	require.Equal(t, "text/html; charset=utf-8", res.header.Get("Content-Type"))
	require.NotEmpty(t, res.header.Get("Content-Security-Policy"))
	page := res.body
	require.NotContains(t, page, "<script")
	require.Contains(t, page, `<span id="detail-name">ny-morning</span>`)
	require.Contains(t, page, `{&#34;lookback&#34;: 3600000000000}`, "args, escaped")
	require.Contains(t, page, "missed once · overlap skip")
	require.Contains(t, page, `<td class="num runs">1</td>`)

	slots := regexp.MustCompile(`(?s)<tr class="slot( dst-change)?">.*?</tr>`).FindAllStringSubmatch(page, -1)
	require.Len(t, slots, schedule.DescribeSlots)
	require.Contains(t, slots[0][0], "2025-03-01 09:00:00 EST")
	require.Contains(t, slots[0][0], "UTC-05:00")
	require.Contains(t, slots[0][0], "2025-03-01T14:00:00Z")
	require.Contains(t, slots[8][0], "2025-03-09 09:00:00 EDT")
	require.Contains(t, slots[8][0], "UTC-04:00")
	require.Contains(t, slots[8][0], "2025-03-09T13:00:00Z")
	for i, sl := range slots {
		require.Equal(t, i == 8, sl[1] != "", "only the first slot after the change is marked (slot %d)", i)
		require.Equal(t, i == 8, strings.Contains(sl[0], "DST change"), "slot %d", i)
	}

	runs := regexp.MustCompile(`(?s)<tr class="run" data-job="(\d+)">.*?</tr>`).FindAllStringSubmatch(page, -1)
	require.Len(t, runs, 1)
	require.Equal(t, fmt.Sprint(run.JobID), runs[0][1])
	require.Contains(t, runs[0][0], fmt.Sprintf(`<a class="job" href="/riverui/jobs/%d">job %d</a>`, run.JobID, run.JobID))
	require.Contains(t, runs[0][0], "available", "no worker runs it here")
	require.Contains(t, runs[0][0], "0 / 25")
	require.Contains(t, runs[0][0], "2025-03-01 07:00:00 EST", "its slot in the schedule's zone")

	// Disable from the detail view, with a note: back to it, note shown.
	form := url.Values{"back": {"detail"}, "by": {"alice"}, "note": {`closed for <b>renovation</b>`}}
	res = s.postForm(t, "/schedules/ny-morning/disable", form)
	require.Equal(t, http.StatusSeeOther, res.code, res.body)
	require.Equal(t, "/schedules/ny-morning?done=disable&schedule=ny-morning", res.header.Get("Location"))
	got := s.get(t, "ny-morning")
	require.False(t, got.Enabled)
	require.Equal(t, &schedule.PauseNote{By: "alice", Note: "closed for <b>renovation</b>", At: handlerNow}, got.Paused)
	page = s.do(t, http.MethodGet, res.header.Get("Location")).body
	require.Contains(t, page, "Disabled <strong>ny-morning</strong>")
	require.Contains(t, page, `<strong class="by">alice</strong>: <span class="text">closed for &lt;b&gt;renovation&lt;/b&gt;</span>`)
	require.Contains(t, page, "Disabled: the slots it would run if enabled now.")
	require.Contains(t, rowOf(t, s.do(t, http.MethodGet, "/schedules/").body, "ny-morning"), "by alice: closed for &lt;b&gt;renovation&lt;/b&gt;", "the list shows the note, short")

	// A note too long: refused on the detail view, nothing written.
	_, err = s.store.Enable(ctx, s.db.Pool, "ny-morning")
	require.NoError(t, err)
	form.Set("note", strings.Repeat("x", schedule.PauseNoteMaxLen+1))
	res = s.postForm(t, "/schedules/ny-morning/disable", form)
	require.Equal(t, http.StatusUnprocessableEntity, res.code, res.body)
	require.Contains(t, res.body, "Could not disable ny-morning")
	require.Contains(t, res.body, "paused.note: is 501 characters long, more than 500")
	require.Contains(t, res.body, `<span id="detail-name">ny-morning</span>`, "the detail view, with the error")
	require.True(t, s.get(t, "ny-morning").Enabled)
	require.Nil(t, s.get(t, "ny-morning").Paused)

	// A script disables with a JSON body naming its caller; a list note
	// is cut short, with the whole on hover.
	long := "the federation's calendar moved every event of the season by a week"
	res = s.doBody(t, http.MethodPost, "/schedules/ny-morning/disable", `{"by": "ops-bot", "note": "`+long+`"}`,
		"Content-Type", "application/json", "Accept", "application/json")
	require.Equal(t, http.StatusOK, res.code, res.body)
	var disabled struct {
		Schedule schedule.Schedule `json:"schedule"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &disabled))
	require.Equal(t, &schedule.PauseNote{By: "ops-bot", Note: long, At: handlerNow}, disabled.Schedule.Paused)
	row := rowOf(t, s.do(t, http.MethodGet, "/schedules/").body, "ny-morning")
	require.Contains(t, row, `title="`+strings.ReplaceAll(long, "'", "&#39;")+`"`)
	require.Contains(t, row, "by ops-bot: the federation&#39;s calendar moved every e…")
	res = s.doBody(t, http.MethodPost, "/schedules/ny-morning/disable", `{"who": "x"}`, "Content-Type", "application/json", "Accept", "application/json")
	require.Equal(t, http.StatusBadRequest, res.code, res.body)
	require.Contains(t, res.body, `unknown field \"who\"`)

	// The JSON API: the schedule's fields, its slots and runs.
	res = s.do(t, http.MethodGet, "/schedules/api/schedules/ny-morning")
	require.Equal(t, http.StatusOK, res.code, res.body)
	var api struct {
		Name      string             `json:"name"`
		Paused    schedule.PauseNote `json:"paused"`
		NextSlots []map[string]any   `json:"next_slots"`
		Runs      []map[string]any   `json:"runs"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &api))
	require.Equal(t, "ny-morning", api.Name)
	require.Equal(t, "ops-bot", api.Paused.By)
	require.Len(t, api.NextSlots, schedule.DescribeSlots)
	require.Equal(t, "-04:00", api.NextSlots[8]["offset"])
	require.Equal(t, true, api.NextSlots[8]["offset_changed"])
	require.Len(t, api.Runs, 1)
	require.EqualValues(t, run.JobID, api.Runs[0]["job_id"])

	// An unknown schedule: a 404 page saying so.
	res = s.do(t, http.MethodGet, "/schedules/no-such")
	require.Equal(t, http.StatusNotFound, res.code)
	require.Contains(t, res.body, "No schedule is named &#8220;no-such&#8221;")
}

// postForm submits a form as a browser does.
func (s *scheduleServer) postForm(t *testing.T, path string, form url.Values) handlerResponse {
	t.Helper()
	return s.doBody(t, http.MethodPost, path, form.Encode(), "Content-Type", "application/x-www-form-urlencoded",
		"Sec-Fetch-Site", "same-origin", "Origin", s.srv.URL, "Accept", "text/html,*/*;q=0.8")
}

// doBody sends a request with a body; headers are name, value pairs.
func (s *scheduleServer) doBody(t *testing.T, method, path, body string, headers ...string) handlerResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noRedirects.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return handlerResponse{code: resp.StatusCode, header: resp.Header, body: string(b)}
}
