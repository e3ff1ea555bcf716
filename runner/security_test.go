package runner_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// randomSuffix makes a test's secrets and role names its own: nothing
// else in the cluster or the output can contain them by chance.
func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// TestSecretsNeverPrinted: the database password, the HTTP password, the
// webhook secret and a token in the webhook URL's query string appear in
// no output, whatever happens: a runner at debug level whose webhook
// fails (its receiver even echoes the URL back), its /metrics, /readyz
// and River UI answers, the jobs' recorded errors, the config, inspect,
// jobs and sweep commands, and configurations rejected with messages that
// would echo the values (an unreachable or missing database, a URL that
// does not parse, a webhook URL or secret that is not valid).
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	suffix := randomSuffix(t)
	var (
		dbSecret    = "Db-S3cret-" + suffix
		httpSecret  = "Http-S3cret-" + suffix
		webhookKey  = "Wh-K3y-" + suffix + "-0123456789"
		webhookB64  = base64.StdEncoding.EncodeToString([]byte(webhookKey))
		whSecret    = attendance.WebhookSecretPrefix + webhookB64
		token       = "Tok-S3cret-" + suffix
		secretNames = map[string]string{
			dbSecret:                           "database password",
			httpSecret:                         "http.password",
			whSecret:                           "notify.webhook.secret",
			strings.TrimRight(webhookB64, "="): "notify.webhook.secret without its prefix",
			webhookKey:                         "notify.webhook.secret's key",
			token:                              "token in notify.webhook.url",
		}
	)
	type output struct{ what, text string }
	var outputs []output
	record := func(what string, texts ...string) {
		outputs = append(outputs, output{what, strings.Join(texts, "\n")})
	}
	recordCLI := func(what string, res result) {
		record(what, res.stdout, res.stderr)
	}

	// A receiver that verifies each delivery, then fails it with an
	// answer quoting the URL it was called on, token included, the way a
	// careless error page does.
	var verified atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if attendance.VerifyWebhook(attendance.Secret(whSecret), r.Header, body, time.Now(), 0) == nil {
			verified.Add(1)
		}
		http.Error(w, "cannot deliver to "+r.URL.String(), http.StatusInternalServerError)
	}))
	defer receiver.Close()
	hookURL := receiver.URL + "/hook?token=" + token

	db := newDB(t, wassotest.Options{})
	// The test server trusts local connections: the password is sent and
	// ignored.
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	require.NotNil(t, u.User)
	u.User = url.UserPassword(u.User.Username(), dbSecret)
	withPassword := u.String()
	noSuchDB := *u
	noSuchDB.Path = "/wasso_no_such_db_" + suffix
	env := []string{
		"WASSO_DATABASE_URL=" + withPassword,
		"WASSO_SCHEMA=" + db.Schema,
		"WASSO_HTTP_USERNAME=admin",
		"WASSO_HTTP_PASSWORD=" + httpSecret,
		"WASSO_NOTIFY_WEBHOOK_URL=" + hookURL,
		"WASSO_NOTIFY_WEBHOOK_SECRET=" + whSecret,
		"WASSO_LOG_LEVEL=debug",
	}
	cli := func(what string, args ...string) result {
		t.Helper()
		res := runCLI(t, cliOpts{env: env}, args...)
		require.Equal(t, 0, res.code, "%s: %s", what, res.String())
		recordCLI(what, res)
		return res
	}

	// The config, in both forms: every secret masked, the URL without
	// its query.
	res := cli("config", "config")
	require.Contains(t, res.stdout, "notify.webhook.secret")
	require.Contains(t, res.stdout, "/hook")
	cli("config --json", "config", "--json")

	// A due event settled by the sweep command, whose notice the runner
	// then fails to deliver, again and again.
	_, eventID := dueClub(t, db, 3)
	cli("sweep", "sweep")
	p := startRun(t, cliOpts{env: env}, "run", "--log-format", "json", "--http-addr", "127.0.0.1:0", "--sweep-interval", "1s")
	p.waitLog(t, "wasso-runner started", time.Minute)
	base := p.baseURL(t)
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT coalesce(sum(cardinality(errors)), 0) FROM river_job WHERE kind = $1`, attendance.NotifyAbsentKind) >= 2
	}, 2*time.Minute, 100*time.Millisecond, "two failed deliveries")
	require.Positive(t, verified.Load(), "the deliveries were signed with the secret")

	for _, get := range []struct{ path, user, pass string }{
		{"/healthz", "", ""},
		{"/readyz", "", ""},
		{"/metrics", "admin", httpSecret},
		{"/metrics", "admin", "wrong"},
		{"/metrics", "", ""},
		{"/riverui/api/jobs?state=retryable&limit=20", "admin", httpSecret},
		{"/riverui/api/jobs?state=available&limit=20", "admin", httpSecret},
		{"/riverui/api/queues", "admin", httpSecret},
	} {
		status, body := doHTTP(t, http.MethodGet, base+get.path, nil, get.user, get.pass)
		record("GET "+get.path+" as "+get.user, body)
		if get.pass == httpSecret || get.user == "" && get.path != "/metrics" {
			require.Equal(t, http.StatusOK, status, "GET %s: %s", get.path, body)
		}
	}
	notifyJob := count(t, db.Pool, `SELECT min(id) FROM river_job WHERE kind = $1`, attendance.NotifyAbsentKind)
	status, job := doHTTP(t, http.MethodGet, base+"/riverui/api/jobs/"+strconv.Itoa(notifyJob), nil, "admin", httpSecret)
	require.Equal(t, http.StatusOK, status, job)
	require.Contains(t, job, "answered 500", "River UI shows the delivery errors")
	record("River UI job", job)

	for _, sub := range []string{"stats", "active", "scheduled", "queues", "registered"} {
		cli("inspect "+sub, "inspect", sub)
		cli("inspect "+sub+" --json", "inspect", sub, "--json")
	}
	res = cli("jobs list --json", "jobs", "list", "--json")
	require.Contains(t, res.stdout, "answered 500", "jobs list shows the last error")
	cli("jobs list", "jobs", "list")

	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
	logs := p.stdout.String() + p.stderr.String()
	require.Contains(t, logs, `"level":"DEBUG"`, "debug logging was on")
	require.Contains(t, logs, "cannot deliver to /hook?", "the failed deliveries were logged, with what the receiver answered")
	record("run", logs)

	// Everything River recorded: arguments, errors, metadata.
	var dump string
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT coalesce(string_agg(x, E'\n'), '') FROM (
		    SELECT row_to_json(j)::text AS x FROM river_job j
		    UNION ALL SELECT row_to_json(q)::text FROM river_queue q
		    UNION ALL SELECT row_to_json(l)::text FROM river_leader l
		) rows`).Scan(&dump))
	require.Contains(t, dump, "answered 500")
	require.Contains(t, dump, `"event_id": `+strconv.FormatInt(eventID, 10), "the notice job's arguments")
	record("river tables", dump)

	// Configurations refused with an error that names the key or the
	// cause, in one line, exit 2.
	refused := []struct {
		name string
		env  []string
		want string
	}{
		{"unreachable database", []string{"WASSO_DATABASE_URL=postgres://wasso:" + dbSecret + "@127.0.0.1:1/wasso?sslmode=disable"}, "database unreachable"},
		{"bad sslmode", []string{"WASSO_DATABASE_URL=postgres://wasso:" + dbSecret + "@127.0.0.1:1/wasso?sslmode=bogus"}, "database_url"},
		{"bad port", []string{"WASSO_DATABASE_URL=postgres://wasso:" + dbSecret + "@127.0.0.1:notaport/wasso"}, "database_url"},
		{"bad escape in the password", []string{"WASSO_DATABASE_URL=postgres://wasso:" + dbSecret + "%zz@127.0.0.1/wasso"}, "database_url"},
		{"keyword/value", []string{"WASSO_DATABASE_URL=host=127.0.0.1 port=1 user=wasso password=" + dbSecret + " dbname=wasso sslmode=disable"}, "database unreachable"},
		{"keyword/value quoted", []string{"WASSO_DATABASE_URL=host=127.0.0.1 port=1 user=wasso password='" + dbSecret + "' dbname=wasso sslmode=disable"}, "database unreachable"},
		{"no such database", []string{"WASSO_DATABASE_URL=" + noSuchDB.String()}, "does not exist"},
		{"password without username", []string{"WASSO_HTTP_USERNAME=", "WASSO_DATABASE_URL=" + withPassword}, "http.password"},
		{"webhook URL not http", []string{"WASSO_DATABASE_URL=" + withPassword, "WASSO_NOTIFY_WEBHOOK_URL=ftp://hooks.example/x?token=" + token}, "notify.webhook.url"},
		{"webhook URL does not parse", []string{"WASSO_DATABASE_URL=" + withPassword, "WASSO_NOTIFY_WEBHOOK_URL=http://[::1/x?token=" + token}, "notify.webhook.url"},
		{"whsec_ secret not base64", []string{"WASSO_DATABASE_URL=" + withPassword, "WASSO_NOTIFY_WEBHOOK_SECRET=whsec_" + webhookKey}, "notify.webhook.secret"},
	}
	for _, tc := range refused {
		for _, format := range []string{"text", "json"} {
			runEnv := append(append([]string{}, env...), tc.env...)
			res := runCLI(t, cliOpts{env: runEnv}, "run", "--log-format", format, "--http-addr", "127.0.0.1:0")
			require.Equal(t, 2, res.code, "%s: %s", tc.name, res.String())
			require.Contains(t, oneLine(t, res.stderr), tc.want, tc.name)
			recordCLI(tc.name+" ("+format+")", res)
		}
	}

	for _, out := range outputs {
		for secret, name := range secretNames {
			require.NotContains(t, out.text, secret, "the %s appears in the output of %s", name, out.what)
		}
	}
}
