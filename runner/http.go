package runner

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/wasso/scheduler/river/schedule"
	"riverqueue.com/riverui"
)

// RiverUIPrefix is where River UI is served.
const RiverUIPrefix = "/riverui"

// SchedulesPrefix is where the schedules page (schedule.NewHandler)
// is served, behind the same auth and read-only mode as River UI.
const SchedulesPrefix = "/schedules"

// httpServer serves River UI, the health checks and the metrics.
//
//   - /healthz: 200 while the process runs (liveness). No auth.
//   - /readyz: 200 when the River client is started (and has not
//     stopped) and the database answers a ping within readyzTimeout,
//     else 503 with the reason (readiness). It follows the database: 503
//     while the database is away, 200 again as soon as it answers, with
//     no restart of the runner. No auth.
//   - /metrics: Prometheus. Basic auth when credentials are configured.
//   - /riverui/: River UI and its API. Basic auth when credentials are
//     configured; in read-only mode every request but GET and HEAD is
//     refused with 403, which covers each of River UI's mutating
//     endpoints (job cancel, retry and delete; queue pause, resume and
//     update).
//   - /schedules/: the schedules page and its JSON
//     (schedule.NewHandler), with River UI's basic auth and
//     read-only mode; it refuses cross-origin POSTs itself.
type httpServer struct {
	a        *app
	listener net.Listener
	server   *http.Server
	ui       *riverui.Handler
	ready    atomic.Bool
	pool     *pgxpool.Pool
	client   *river.Client[pgx.Tx]
}

// readyzTimeout bounds the database ping of /readyz, so that a database
// that hangs instead of refusing connections (a lost host, a full pool)
// gets a 503 with its reason rather than a hung probe. Probes should allow
// a little more (Kubernetes: timeoutSeconds: 3); one that gives up first
// fails too, only without the reason.
const readyzTimeout = 2 * time.Second

// listen binds the configured address. A failure is a configuration error:
// it happens before anything else is started.
func (a *app) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.HTTP.Addr)
	if err != nil {
		return nil, &ConfigError{Key: "http.addr", Source: a.cfg.Source("http.addr"), Err: err}
	}
	return ln, nil
}

func newHTTPServer(a *app, ln net.Listener, pool *pgxpool.Pool, client *river.Client[pgx.Tx], m *metrics) (*httpServer, error) {
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    a.logger.With(slog.String("component", "riverui")),
		Prefix:    RiverUIPrefix,
	})
	if err != nil {
		return nil, err
	}
	s := &httpServer{a: a, listener: ln, ui: ui, pool: pool, client: client}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("/metrics", s.auth(promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      log.New(logWriter{logger: a.logger, msg: "metrics"}, "", 0),
	})))
	var uiHandler http.Handler = ui
	if a.cfg.HTTP.ReadOnly {
		uiHandler = readOnly(uiHandler)
	}
	// River UI's API takes any POST body as JSON, so a page in the
	// operator's browser could otherwise send it cross-site requests
	// (cancel, delete) that need no preflight.
	uiHandler = http.NewCrossOriginProtection().Handler(uiHandler)
	mux.Handle(RiverUIPrefix+"/", s.auth(uiHandler))
	mux.Handle(RiverUIPrefix, http.RedirectHandler(RiverUIPrefix+"/", http.StatusMovedPermanently))
	// The schedules page, which River UI lacks: its own store on the
	// pool, enqueuing run-now jobs through this client. It refuses
	// cross-origin POSTs itself; read-only hides its buttons, and the
	// readOnly wrapper refuses its POSTs as it does River UI's.
	schedConfig := a.cfg.RiverConfig().Schedules
	schedConfig.Inserter = client
	schedConfig.Logger = a.logger.With(slog.String("component", "schedules"))
	schedStore, err := schedule.NewStore(schedConfig)
	if err != nil {
		return nil, err
	}
	schedHandler, err := schedule.NewHandler(schedule.HandlerOpts{
		Store:         schedStore,
		DB:            pool,
		Prefix:        SchedulesPrefix,
		RiverUIPrefix: RiverUIPrefix,
		ReadOnly:      a.cfg.HTTP.ReadOnly,
		Logger:        schedConfig.Logger,
	})
	if err != nil {
		return nil, err
	}
	if a.cfg.HTTP.ReadOnly {
		schedHandler = readOnly(schedHandler)
	}
	mux.Handle(SchedulesPrefix+"/", s.auth(schedHandler))
	mux.Handle(SchedulesPrefix, http.RedirectHandler(SchedulesPrefix+"/", http.StatusMovedPermanently))
	mux.Handle("GET /{$}", http.RedirectHandler(RiverUIPrefix+"/", http.StatusFound))

	s.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(logWriter{logger: a.logger, msg: "http server"}, "", 0),
	}
	return s, nil
}

// start starts River UI's background services and serves until shutdown.
func (s *httpServer) start(ctx context.Context) (<-chan error, error) {
	if err := s.ui.Start(ctx); err != nil {
		return nil, err
	}
	errs := make(chan error, 1)
	go func() {
		if err := s.server.Serve(s.listener); err != nil && err != http.ErrServerClosed {
			errs <- err
		}
		close(errs)
	}()
	return errs, nil
}

func (s *httpServer) shutdown(ctx context.Context) {
	if err := s.server.Shutdown(ctx); err != nil {
		_ = s.server.Close()
	}
}

func (s *httpServer) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "river client not started or stopping"})
		return
	}
	// River's client does not stop when the database goes away (its
	// services retry), but runWith exits once it has stopped; until then
	// the runner works no job.
	select {
	case <-s.client.Stopped():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "river client stopped"})
		return
	default:
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "database: " + s.a.redact.redact(err.Error())})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// auth requires HTTP basic auth when credentials are configured. The
// comparison is on hashes, in constant time, so that neither the length
// nor the content of the credentials leaks through timing.
func (s *httpServer) auth(next http.Handler) http.Handler {
	user, pass := s.a.cfg.HTTP.Username, s.a.cfg.HTTP.Password
	if user == "" {
		return next
	}
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		if ok && subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="wasso-runner", charset="UTF-8"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "unauthorized"})
	})
}

// readOnly refuses every request that could change something. River UI
// changes state only through POST, PUT, PATCH and DELETE requests to its
// API, so allowing GET and HEAD alone is exhaustive, including for
// endpoints later River UI versions add.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "River UI is read-only on this runner (http.read_only)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// checkHTTPExposure refuses to serve River UI (which can cancel and delete
// jobs) and the metrics on a non-loopback address without credentials.
func (c *Config) checkHTTPExposure() error {
	if !c.HTTP.Enabled || c.HTTP.Username != "" {
		return nil
	}
	host, _, _ := net.SplitHostPort(c.HTTP.Addr)
	if isLoopback(host) {
		return nil
	}
	return &ConfigError{Key: "http.addr", Source: c.Source("http.addr"), Err: fmt.Errorf(
		"%s is not a loopback address: set http.username and http.password (WASSO_HTTP_USERNAME, WASSO_HTTP_PASSWORD) to serve River UI and metrics there, or bind to 127.0.0.1", c.HTTP.Addr)}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
