package runner_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// TestRunWebhookNotifier runs a runner configured with a webhook: the
// members its sweep marks absent are POSTed, signed with the secret from
// the environment, and the secret appears nowhere in its output.
func TestRunWebhookNotifier(t *testing.T) {
	t.Parallel()

	const secret = "whsec-runner-test-8c1f"
	var (
		mu      sync.Mutex
		notices []attendance.AbsentNotice
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || !attendance.VerifySignature([]byte(secret), body, r.Header.Get(attendance.SignatureHeader)) {
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

	db := wassotest.NewDB(t, wassotest.Options{})
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
	require.NotContains(t, p.stderr.String()+p.stdout.String(), secret)

	res := runCLI(t, cliOpts{env: []string{"WASSO_NOTIFY_WEBHOOK_URL=" + srv.URL, "WASSO_NOTIFY_WEBHOOK_SECRET=" + secret}}, append([]string{"config"}, dbArgs(db)...)...)
	require.Equal(t, 0, res.code, res.String())
	require.Contains(t, res.stdout, "notify.webhook.secret")
	require.NotContains(t, res.stdout+res.stderr, secret)
}
