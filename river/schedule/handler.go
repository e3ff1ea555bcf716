package schedule

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The schedules page is what open-source River UI lacks for the schedules
// of wasso_schedule: a list of them with their last and next runs, and
// buttons to enable, disable and run one now. It is server-rendered
// (html/template, no script at all), so that it needs no build step and
// its Content-Security-Policy can forbid every script.

//go:embed page.html
var schedulePageHTML string

//go:embed page.css
var schedulePageCSS string

//go:embed detail.html
var scheduleDetailHTML string

var (
	// schedulePageTmpl holds the list ("schedules") and the detail view
	// of one schedule ("detail"), which share the flash ("flash").
	schedulePageTmpl = template.Must(template.Must(template.New("schedules").Parse(schedulePageHTML)).
				New("detail").Parse(scheduleDetailHTML))
	// schedulePageCSP allows the page's one inline style sheet, by its
	// hash, and nothing else: no script, no frame, no form posting
	// elsewhere. frame-ancestors 'none' keeps another site from framing
	// the page to trick a click on its buttons.
	schedulePageCSP = func() string {
		sum := sha256.Sum256([]byte(schedulePageCSS))
		return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	}()
)

// HandlerDB is what the schedules page reads and writes the
// schedules through: a *pgxpool.Pool is one.
type HandlerDB interface {
	DB
	Beginner
}

// HandlerOpts configures NewHandler.
type HandlerOpts struct {
	// Store reads and writes the schedules. Its inserter must be set
	// (StoreConfig.Inserter or SetInserter) for Run now to work;
	// the page still lists, enables and disables without one. Required.
	Store *Store

	// DB is the pool the store works on. Required.
	DB HandlerDB

	// Prefix is the path the handler is mounted at, such as "/schedules",
	// without a trailing slash: the page is Prefix+"/", the JSON list
	// Prefix+"/api/schedules". Empty serves from the root. Mount the
	// handler at Prefix+"/" (http.ServeMux), as with riverui.NewHandler.
	Prefix string

	// RiverUIPrefix is where River UI is mounted on the same server, such
	// as "/riverui": the page links to it, and a schedule's last run to its
	// job there (RiverUIPrefix+"/jobs/<id>"). Empty: no links, unless
	// JobURL is set.
	RiverUIPrefix string

	// JobURL, if set, returns the link of a job, for a job page other than
	// River UI's; it takes precedence over RiverUIPrefix for job links.
	JobURL func(jobID int64) string

	// ReadOnly leaves out the Enable, Disable and Run now buttons, with a
	// note saying why, and refuses their POSTs with 403: for a runner
	// whose operators may look but not touch.
	ReadOnly bool

	// CrossOriginProtection refuses cross-origin POSTs, so that a page in
	// the operator's browser cannot press the buttons for them (a form
	// posted cross-site carries the browser's basic auth credentials).
	// Nil means http.NewCrossOriginProtection(); pass one with trusted
	// origins when a proxy rewrites the Host header.
	CrossOriginProtection *http.CrossOriginProtection

	// Logger receives a line per change made through the handler, and
	// its errors. Nil discards.
	Logger *slog.Logger
}

// NewHandler returns the schedules page, in the manner of
// riverui.NewHandler:
//
//   - GET {Prefix}/: the HTML page listing every schedule: name (linked
//     to its detail view), kind, timetable, time zone, state and pause
//     note, last run (in the schedule's zone, linked to its job), next
//     run, run, skipped and missed counts, and Enable / Disable / Run now
//     buttons unless ReadOnly. It fits a 1280-pixel-wide window.
//   - GET {Prefix}/{name}: the detail view of one schedule (Describe):
//     its settings, counters and pause note, its next slots with their
//     UTC offsets (a daylight saving time change marked), its latest runs
//     (linked to their jobs) with state, attempts, duration and last
//     error, and a Disable form taking a note.
//   - POST {Prefix}/{name}/enable, /disable, /run-now: does it through the
//     store and redirects (303) back to the page the form was on, whose
//     flash message says what was done. A disable may carry "by" and
//     "note" (form fields, or a JSON object with Content-Type
//     application/json): they are recorded as the pause note (Pause); "by"
//     defaults to the basic auth user. An error (no such schedule, an
//     enable the store refuses, a note too long) is shown on the page,
//     with a 4xx or 500 status. A POST that accepts application/json and
//     not text/html gets JSON instead: {"schedule": ...} for enable and
//     disable, {"schedule", "job_id", "slot"} for run now, {"message"}
//     for an error.
//   - GET {Prefix}/api/schedules: the schedules as a JSON array of
//     Schedule; GET {Prefix}/api/schedules/{name}: one of them as a
//     Description (the Schedule's fields, with "next_slots", "runs" and
//     "as_of").
//
// Every POST passes CrossOriginProtection first. The handler does no
// authentication: mount it behind the same as River UI.
func NewHandler(opts HandlerOpts) (http.Handler, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: schedule handler: Store is nil", ErrInvalidConfig)
	}
	if opts.DB == nil {
		return nil, fmt.Errorf("%w: schedule handler: DB is nil", ErrInvalidConfig)
	}
	prefix := strings.TrimSuffix(opts.Prefix, "/")
	if prefix != "" && (!strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "{}? #")) {
		return nil, fmt.Errorf("%w: schedule handler: Prefix %q must be a path such as /schedules", ErrInvalidConfig, opts.Prefix)
	}
	riverUI := strings.TrimSuffix(opts.RiverUIPrefix, "/")
	jobURL := opts.JobURL
	if jobURL == nil && riverUI != "" {
		jobURL = func(id int64) string { return riverUI + "/jobs/" + strconv.FormatInt(id, 10) }
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &scheduleHandler{
		store:    opts.Store,
		db:       opts.DB,
		prefix:   prefix,
		riverUI:  riverUI,
		jobURL:   jobURL,
		readOnly: opts.ReadOnly,
		logger:   logger,
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/{$}", h.page)
	if prefix != "" {
		mux.Handle("GET "+prefix, http.RedirectHandler(prefix+"/", http.StatusMovedPermanently))
	}
	mux.HandleFunc("GET "+prefix+"/api/schedules", h.apiList)
	mux.HandleFunc("GET "+prefix+"/api/schedules/{name}", h.apiGet)
	mux.HandleFunc("GET "+prefix+"/{name}", h.detail)
	for _, action := range []string{actionEnable, actionDisable, actionRunNow} {
		mux.HandleFunc("POST "+prefix+"/{name}/"+action, h.act(action))
	}

	cop := opts.CrossOriginProtection
	if cop == nil {
		cop = http.NewCrossOriginProtection()
		cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "403 cross-origin request refused: the schedules page only accepts its own forms", http.StatusForbidden)
		}))
	}
	return cop.Handler(mux), nil
}

// The actions of the page's buttons, as their URLs end.
const (
	actionEnable  = "enable"
	actionDisable = "disable"
	actionRunNow  = "run-now"
)

type scheduleHandler struct {
	store    *Store
	db       HandlerDB
	prefix   string
	riverUI  string
	jobURL   func(int64) string
	readOnly bool
	logger   *slog.Logger
}

// pageChrome is what the list and the detail templates both render.
type pageChrome struct {
	// CSS is the style sheet, whose hash the page's CSP allows: written
	// as is, byte for byte.
	CSS        template.CSS
	PageURL    string
	APIURL     string
	RiverUIURL string
	ReadOnly   bool
	Flash      *scheduleFlash
	Error      string
}

// chrome fills pageChrome for a page whose API link is apiURL.
func (h *scheduleHandler) chrome(apiURL string, flash *scheduleFlash, errMsg string) pageChrome {
	c := pageChrome{
		CSS: template.CSS(schedulePageCSS), PageURL: h.prefix + "/", APIURL: apiURL,
		ReadOnly: h.readOnly, Flash: flash, Error: errMsg,
	}
	if h.riverUI != "" {
		c.RiverUIURL = h.riverUI + "/"
	}
	return c
}

// schedulePage is what the page template renders.
type schedulePage struct {
	pageChrome
	ListError string
	Rows      []scheduleRow
	Now       *pageTime
	Columns   int
}

// detailPage is what the detail template renders: one schedule, as
// Describe returns it.
type detailPage struct {
	pageChrome
	// NotFound is the name asked for when no schedule has it; Row is nil
	// then.
	NotFound  string
	Row       *scheduleRow
	NextSlots []detailSlot
	Runs      []detailRun
	// By is the basic auth user, the default of the Disable form's "by".
	By  string
	Now *pageTime
}

type detailSlot struct {
	N                            int
	Local, UTC, Offset, Relative string
	OffsetChanged                bool
}

type detailRun struct {
	Run
	JobURL   string
	Slot     string
	Created  *pageTime
	Duration string
}

// scheduleFlash says what the last POST did: the query parameters of the
// page it redirects to. Only the action is taken from them as a word;
// the text is the template's, so a crafted link can show no text of its
// own.
type scheduleFlash struct {
	Action string
	Name   string
	JobID  int64
	JobURL string
}

type scheduleRow struct {
	Schedule
	DetailURL  string
	Paused     *pausedNote
	Spec       string
	Policies   string
	Args       string
	From       *pageTime // StartAt
	Until      *pageTime // ExpiresAt
	LastRun    *pageTime
	LastJobURL string
	NextRun    *pageTime
	Overdue    bool
	EnableURL  string
	DisableURL string
	RunNowURL  string
}

// pausedNote is a schedule's pause note as the page shows it: Short
// (cut to fit the list) with the full text on hover.
type pausedNote struct {
	By, Note, Short string
	At              *pageTime
}

// pauseNoteShort is how many characters of a pause note the list shows.
const pauseNoteShort = 40

// shorten cuts s to n characters, marking the cut with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// pageTime is an instant as the page shows it: in the schedule's zone,
// relative to now, and in UTC on hover.
type pageTime struct {
	Local    string
	UTC      string
	Relative string
}

func newPageTime(t time.Time, loc *time.Location, now time.Time) *pageTime {
	if t.IsZero() {
		return nil
	}
	return &pageTime{
		Local:    t.In(loc).Format("2006-01-02 15:04:05 MST"),
		UTC:      FormatSlot(t),
		Relative: relativeTime(t.Sub(now)),
	}
}

// relativeTime writes d as "in 5m" or "3h 20m ago", to two units at most.
func relativeTime(d time.Duration) string {
	future := d > 0
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	var s string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
		if sec := int(d.Seconds()) % 60; sec != 0 && d < 10*time.Minute {
			s += fmt.Sprintf(" %ds", sec)
		}
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d.Hours()))
		if m := int(d.Minutes()) % 60; m != 0 {
			s += fmt.Sprintf(" %dm", m)
		}
	default:
		s = fmt.Sprintf("%dd", int(d.Hours())/24)
		if h := int(d.Hours()) % 24; h != 0 {
			s += fmt.Sprintf(" %dh", h)
		}
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// humanEvery writes an interval without Go's trailing zero units: "5m",
// "1h30m", "24h" rather than "5m0s", "1h30m0s", "24h0m0s".
func humanEvery(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (h *scheduleHandler) actionURL(name, action string) string {
	return h.prefix + "/" + url.PathEscape(name) + "/" + action
}

// zoneOf returns the location of a schedule's zone. zones caches the
// locations of one rendering, time.LoadLocation reading the zone database
// each time.
func zoneOf(tz string, zones map[string]*time.Location) *time.Location {
	loc, ok := zones[tz]
	if !ok {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil || tz == "" {
			// Not a zone the store accepts; shown in UTC rather than not
			// at all.
			loc = time.UTC
		}
		zones[tz] = loc
	}
	return loc
}

// row is the page's row of s.
func (h *scheduleHandler) row(s Schedule, now time.Time, zones map[string]*time.Location) scheduleRow {
	loc := zoneOf(s.TimeZone, zones)
	r := scheduleRow{
		Schedule:   s,
		DetailURL:  h.prefix + "/" + url.PathEscape(s.Name),
		From:       newPageTime(s.StartAt, loc, now),
		Until:      newPageTime(s.ExpiresAt, loc, now),
		LastRun:    newPageTime(s.LastRunAt, loc, now),
		NextRun:    newPageTime(s.NextRunAt, loc, now),
		EnableURL:  h.actionURL(s.Name, actionEnable),
		DisableURL: h.actionURL(s.Name, actionDisable),
		RunNowURL:  h.actionURL(s.Name, actionRunNow),
	}
	if s.Every != 0 {
		r.Spec = "every " + humanEvery(s.Every)
	} else {
		r.Spec = s.Cron
	}
	r.Policies = fmt.Sprintf("missed %s · overlap %s", s.Missed, s.Overlap)
	if s.CatchupWindow != 0 {
		r.Policies += fmt.Sprintf(" · catch-up window %s", s.CatchupWindow)
	}
	if s.Jitter != 0 {
		r.Policies += fmt.Sprintf(" · jitter up to %s", s.Jitter)
	}
	if s.PauseAfterFailures != 0 {
		r.Policies += fmt.Sprintf(" · pause after %d failed jobs", s.PauseAfterFailures)
	}
	if !s.BufferedSlot.IsZero() {
		r.Policies += " · one run waiting for the previous job"
	}
	if args := strings.TrimSpace(string(s.Args)); args != "" && args != "{}" {
		r.Args = args
	}
	if p := s.Paused; p != nil {
		r.Paused = &pausedNote{By: p.By, Note: p.Note, Short: shorten(p.Note, pauseNoteShort), At: newPageTime(p.At, loc, now)}
	}
	if s.LastJobID != 0 && h.jobURL != nil {
		r.LastJobURL = h.jobURL(s.LastJobID)
	}
	// A slot is on time until MissedGrace after it: an enabled
	// schedule whose next run is further behind has no scheduler working
	// it (no leader, a leader without schedules, a stuck row lock).
	r.Overdue = s.Enabled && !s.NextRunAt.IsZero() && now.Sub(s.NextRunAt) > MissedGrace
	return r
}

// render writes the page with status, listing the schedules afresh; a
// failed list is shown on the page too.
func (h *scheduleHandler) render(w http.ResponseWriter, r *http.Request, status int, flash *scheduleFlash, errMsg string) {
	now := h.store.now()
	pageLoc, err := time.LoadLocation(h.store.config.DefaultTimeZone)
	if err != nil {
		pageLoc = time.UTC
	}
	data := schedulePage{
		pageChrome: h.chrome(h.prefix+"/api/schedules", flash, errMsg),
		Now:        newPageTime(now, pageLoc, now),
		Columns:    9,
	}
	if !h.readOnly {
		data.Columns++
	}
	list, err := h.store.List(r.Context(), h.db)
	if err != nil {
		h.logger.ErrorContext(r.Context(), "schedules page: list schedules", slog.String("error", err.Error()))
		data.ListError = "Could not list the schedules: " + err.Error()
		status = max(status, http.StatusInternalServerError)
	}
	zones := map[string]*time.Location{}
	for _, s := range list {
		data.Rows = append(data.Rows, h.row(s, now, zones))
	}
	h.write(w, r, status, "schedules", data)
}

// write renders the template named with data and sends it with status.
// The page is rendered whole before anything is sent, so that a template
// error is a clean 500 rather than half a page.
func (h *scheduleHandler) write(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var page bytes.Buffer
	if err := schedulePageTmpl.ExecuteTemplate(&page, name, data); err != nil {
		h.logger.ErrorContext(r.Context(), "schedules page: render", slog.String("error", err.Error()))
		http.Error(w, "500 the schedules page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(page.Bytes())
}

func setPageHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", schedulePageCSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	// The page shows live state, and the flash belongs to one redirect.
	hdr.Set("Cache-Control", "no-store")
}

func (h *scheduleHandler) page(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, h.flashFrom(r.URL.Query()), "")
}

// detail serves the detail view of one schedule.
func (h *scheduleHandler) detail(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h.renderDetail(w, r, name, http.StatusOK, h.flashFrom(r.URL.Query()), "")
}

// renderDetail writes the detail view of the schedule named with status;
// a schedule that does not exist is a 404 page saying so.
func (h *scheduleHandler) renderDetail(w http.ResponseWriter, r *http.Request, name string, status int, flash *scheduleFlash, errMsg string) {
	now := h.store.now()
	data := detailPage{pageChrome: h.chrome(h.prefix+"/api/schedules/"+url.PathEscape(name), flash, errMsg)}
	if user, _, ok := r.BasicAuth(); ok {
		data.By = user
	}
	d, err := h.store.Describe(r.Context(), h.db, name)
	switch {
	case errors.Is(err, ErrNotFound):
		data.NotFound = name
		status = max(status, http.StatusNotFound)
	case err != nil:
		h.logger.ErrorContext(r.Context(), "schedules page: describe schedule", slog.String("schedule", name), slog.String("error", err.Error()))
		data.Error = "Could not read the schedule: " + err.Error()
		status = max(status, http.StatusInternalServerError)
	default:
		now = d.AsOf
		zones := map[string]*time.Location{}
		row := h.row(d.Schedule, now, zones)
		data.Row = &row
		loc := zoneOf(d.Schedule.TimeZone, zones)
		data.Now = newPageTime(now, loc, now)
		for i, sl := range d.NextSlots {
			data.NextSlots = append(data.NextSlots, detailSlot{
				N: i + 1, Local: sl.Local.Format("2006-01-02 15:04:05 MST"), UTC: FormatSlot(sl.At), Offset: "UTC" + sl.Offset,
				Relative: relativeTime(sl.At.Sub(now)), OffsetChanged: sl.OffsetChanged,
			})
		}
		for _, run := range d.Runs {
			dr := detailRun{Run: run, Created: newPageTime(run.CreatedAt, loc, now)}
			if h.jobURL != nil {
				dr.JobURL = h.jobURL(run.JobID)
			}
			if !run.Slot.IsZero() {
				dr.Slot = run.Slot.In(loc).Format("2006-01-02 15:04:05 MST")
			}
			switch {
			case run.State == "running" && !run.AttemptedAt.IsZero():
				dr.Duration = "running for " + humanDuration(run.Duration)
			case run.Duration > 0:
				dr.Duration = humanDuration(run.Duration)
			}
			data.Runs = append(data.Runs, dr)
		}
	}
	h.write(w, r, status, "detail", data)
}

// humanDuration writes how long a job ran, to a precision that fits its
// length: "850ms", "12.3s", "4m05s", "2h10m".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// flashFrom reads the flash of a redirect after a POST; anything it does
// not recognize shows nothing.
func (h *scheduleHandler) flashFrom(q url.Values) *scheduleFlash {
	f := &scheduleFlash{Action: q.Get("done"), Name: q.Get("schedule")}
	switch f.Action {
	case actionEnable, actionDisable:
	case actionRunNow:
		id, err := strconv.ParseInt(q.Get("job"), 10, 64)
		if err != nil || id <= 0 {
			return nil
		}
		f.JobID = id
		if h.jobURL != nil {
			f.JobURL = h.jobURL(id)
		}
	default:
		return nil
	}
	if !scheduleNameRE.MatchString(f.Name) {
		return nil
	}
	return f
}

func (h *scheduleHandler) act(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		name := r.PathValue("name")
		if h.readOnly {
			h.fail(w, r, http.StatusForbidden, "The schedules page is read-only on this server: enable, disable and run now are turned off.")
			return
		}
		var (
			sched    *Schedule
			run      *RunNowResult
			pausedBy string
			err      error
		)
		switch action {
		case actionEnable:
			sched, err = h.store.Enable(ctx, h.db, name)
		case actionDisable:
			var note *PauseNote
			if note, err = pauseNoteFrom(r); err != nil {
				h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Could not disable %s: %v. Nothing was changed.", name, err))
				return
			}
			if note != nil {
				pausedBy = note.By
				sched, err = h.store.Pause(ctx, h.db, name, *note)
			} else {
				sched, err = h.store.Disable(ctx, h.db, name)
			}
		case actionRunNow:
			run, err = h.store.RunNow(ctx, h.db, name)
		}
		attrs := []any{slog.String("schedule", name), slog.String("action", action), slog.String("remote_addr", r.RemoteAddr)}
		if user, _, ok := r.BasicAuth(); ok {
			attrs = append(attrs, slog.String("user", user))
		}
		if pausedBy != "" {
			attrs = append(attrs, slog.String("paused_by", pausedBy))
		}
		if err != nil {
			status, msg := actionError(action, name, err)
			attrs = append(attrs, slog.Int("status", status), slog.String("error", err.Error()))
			level := slog.LevelWarn
			if status >= http.StatusInternalServerError {
				level = slog.LevelError
			}
			h.logger.Log(ctx, level, "schedules page: action failed", attrs...)
			h.fail(w, r, status, msg)
			return
		}
		q := url.Values{"done": {action}, "schedule": {name}}
		if run != nil {
			q.Set("job", strconv.FormatInt(run.JobID, 10))
			attrs = append(attrs, slog.Int64("job_id", run.JobID))
		}
		h.logger.InfoContext(ctx, "schedules page: "+strings.ReplaceAll(action, "-", " "), attrs...)
		if wantsJSON(r) {
			if run != nil {
				writeHandlerJSON(w, http.StatusOK, map[string]any{"schedule": name, "job_id": run.JobID, "slot": FormatSlot(run.Slot)})
			} else {
				writeHandlerJSON(w, http.StatusOK, map[string]any{"schedule": sched})
			}
			return
		}
		back := h.prefix + "/"
		if r.FormValue("back") == "detail" {
			back = h.prefix + "/" + url.PathEscape(name)
		}
		http.Redirect(w, r, back+"?"+q.Encode(), http.StatusSeeOther)
	}
}

// maxActionBody bounds the body of a POST: a pause note and a name fit
// many times over.
const maxActionBody = 16 << 10

// pauseNoteFrom reads the pause note of a disable: "by" and "note" from a
// JSON object (Content-Type application/json) or from the form. It
// returns nil when neither is given; "by" defaults to the basic auth
// user.
func pauseNoteFrom(r *http.Request) (*PauseNote, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxActionBody)
	var by, note *string
	if mediaType := strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0]); mediaType == "application/json" {
		var body struct {
			By   *string `json:"by"`
			Note *string `json:"note"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("the body is not a JSON object of by and note: %w", err)
		}
		by, note = body.By, body.Note
	} else {
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("the form could not be read: %w", err)
		}
		if _, ok := r.PostForm["by"]; ok {
			by = ptrTo(r.PostForm.Get("by"))
		}
		if _, ok := r.PostForm["note"]; ok {
			note = ptrTo(r.PostForm.Get("note"))
		}
	}
	if by == nil && note == nil {
		if user, _, ok := r.BasicAuth(); ok {
			return &PauseNote{By: user}, nil
		}
		return nil, nil
	}
	p := &PauseNote{}
	if by != nil {
		p.By = strings.TrimSpace(*by)
	}
	if p.By == "" {
		if user, _, ok := r.BasicAuth(); ok {
			p.By = user
		}
	}
	if note != nil {
		p.Note = strings.TrimSpace(*note)
	}
	return p, nil
}

// actionError is the status and the sentence the page shows for an
// error of action on the schedule named.
func actionError(action, name string, err error) (int, string) {
	verb := map[string]string{actionEnable: "enable", actionDisable: "disable", actionRunNow: "run"}[action]
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, fmt.Sprintf("No schedule is named %q: it may have been deleted or renamed. Nothing was done.", name)
	case errors.Is(err, ErrInvalidSchedule):
		return http.StatusUnprocessableEntity, fmt.Sprintf("Could not %s %s: %v. Nothing was changed.", verb, name, err)
	case errors.Is(err, ErrInvalidConfig):
		return http.StatusInternalServerError, fmt.Sprintf("Could not %s %s: this server cannot enqueue jobs (%v).", verb, name, err)
	default:
		return http.StatusInternalServerError, fmt.Sprintf("Could not %s %s: %v.", verb, name, err)
	}
}

// fail answers a POST that failed: the page with the error, or JSON for
// a script.
func (h *scheduleHandler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if wantsJSON(r) {
		writeHandlerJSON(w, status, map[string]string{"message": msg})
		return
	}
	if r.FormValue("back") == "detail" {
		h.renderDetail(w, r, r.PathValue("name"), status, nil, msg)
		return
	}
	h.render(w, r, status, nil, msg)
}

// wantsJSON says whether the client asked for JSON rather than a page: a
// script sending Accept: application/json. Browsers submitting a form
// accept text/html.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func (h *scheduleHandler) apiList(w http.ResponseWriter, r *http.Request) {
	list, err := h.store.List(r.Context(), h.db)
	if err != nil {
		h.logger.ErrorContext(r.Context(), "schedules api: list schedules", slog.String("error", err.Error()))
		writeHandlerJSON(w, http.StatusInternalServerError, map[string]string{"message": "list schedules: " + err.Error()})
		return
	}
	if list == nil {
		list = []Schedule{}
	}
	writeHandlerJSON(w, http.StatusOK, list)
}

func (h *scheduleHandler) apiGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sched, err := h.store.Describe(r.Context(), h.db, name)
	switch {
	case errors.Is(err, ErrNotFound):
		writeHandlerJSON(w, http.StatusNotFound, map[string]string{"message": fmt.Sprintf("no schedule is named %q", name)})
	case err != nil:
		h.logger.ErrorContext(r.Context(), "schedules api: get schedule", slog.String("schedule", name), slog.String("error", err.Error()))
		writeHandlerJSON(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
	default:
		writeHandlerJSON(w, http.StatusOK, sched)
	}
}

func writeHandlerJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
