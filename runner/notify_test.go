package runner_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// TestRunWebhookNotifier runs a runner configured with a webhook: the
// members its sweep marks absent are POSTed, signed the Standard Webhooks
// way with the whsec_ secret from the environment, and the secret appears
// nowhere in its output.
func TestRunWebhookNotifier(t *testing.T) {
	t.Parallel()

	const secret = "whsec_" + "cnVubmVyLXRlc3Qta2V5LThjMWYtOWQyZS0zYTdi" // base64 of runner-test-key-8c1f-9d2e-3a7b
	var (
		mu      sync.Mutex
		notices []attendance.AbsentNotice
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = attendance.VerifyWebhook(secret, r.Header, body, time.Now(), attendance.WebhookToleranceDefault)
		}
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n attendance.AbsentNotice
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		notices = append(notices, n)
		mu.Unlock()
	}))
	defer srv.Close()

	db := newDB(t, wassotest.Options{})
	_, eventID := dueClub(t, db, 3)
	p := startRunner(t, db, cliOpts{env: []string{
		"WASSO_NOTIFY_WEBHOOK_URL=" + srv.URL + "/absent",
		"WASSO_NOTIFY_WEBHOOK_SECRET=" + secret,
		"WASSO_LOG_LEVEL=debug",
	}}, "--sweep-interval", "1s")

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notices) > 0
	}, time.Minute, 50*time.Millisecond, p.stderr.String())
	mu.Lock()
	n := notices[0]
	mu.Unlock()
	require.Equal(t, eventID, n.EventID)
	require.Len(t, n.Members, 3)

	p.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.wait(t, time.Minute))
	require.NotContains(t, p.stderr.String()+p.stdout.String(), secret, "see TestSecretsNeverPrinted for every output")
}

// TestSecretOfTheWrongType names the key but not the value: an unquoted
// all-digit password is read from YAML as a number.
func TestSecretOfTheWrongType(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wasso-runner.yaml"), []byte("http:\n  username: admin\n  password: 98765432101\nnotify:\n  webhook:\n    url: https://push.example/hook\n    secret: 1234567890123\n"), 0o600))
	res := runCLI(t, cliOpts{dir: dir}, "config")
	require.Equal(t, 2, res.code, res.String())
	require.Contains(t, res.stderr, "http.password")
	require.Contains(t, res.stderr, "must be a string (quote it)")
	require.NotContains(t, res.stdout+res.stderr, "98765432101")
	require.NotContains(t, res.stdout+res.stderr, "1234567890123")
}

// TestRiverUICrossOriginRequestsRefused sends River UI's cancel endpoint a
// request as a browser would from another site: it is refused, while the
// same request from the UI's own origin goes through.
func TestRiverUICrossOriginRequestsRefused(t *testing.T) {
	t.Parallel()

	db := newDB(t, wassotest.Options{})
	p := startRunner(t, db, cliOpts{})
	base := p.baseURL(t)
	post := func(site string) int {
		req, err := http.NewRequest(http.MethodPost, base+"/riverui/api/jobs/cancel", strings.NewReader(`{"ids":["1"]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Sec-Fetch-Site", site)
		res, err := httpClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusForbidden, post("cross-site"))
	require.NotEqual(t, http.StatusForbidden, post("same-origin"))
}
