package attendance_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

const testSecret = "s3cr3t-shared-with-the-backend"

// delivery is one request the test receiver got.
type delivery struct {
	Notice         attendance.AbsentNotice
	IdempotencyKey string
	Attempt        string
	Status         int
}

// receiver is a webhook endpoint that checks each request's signature the
// way a receiver must (HMAC-SHA256 of the raw body under the shared
// secret), answers 503 while down, and records what it got.
type receiver struct {
	t    *testing.T
	down atomic.Bool

	mu         sync.Mutex
	deliveries []delivery
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	// Computed here independently of attendance.Sign, and also checked
	// with the helper receivers are given.
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	got := r.Header.Get(attendance.SignatureHeader)
	if got != want || !attendance.VerifySignature([]byte(testSecret), body, got) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	d := delivery{IdempotencyKey: r.Header.Get(attendance.IdempotencyKeyHeader), Attempt: r.Header.Get(attendance.AttemptHeader)}
	if err := json.Unmarshal(body, &d.Notice); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	d.Status = http.StatusNoContent
	if rc.down.Load() {
		d.Status = http.StatusServiceUnavailable
	}
	rc.mu.Lock()
	rc.deliveries = append(rc.deliveries, d)
	rc.mu.Unlock()
	w.WriteHeader(d.Status)
}

func (rc *receiver) all() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.deliveries...)
}

func TestWebhookNotifier(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	notice := attendance.AbsentNotice{
		IdempotencyKey: "wasso-absent-1-2-3",
		EventID:        1,
		EventTitle:     "Weekly meeting",
		ClubName:       "Chess club",
		Members:        []attendance.AbsentMember{{MappingID: 7, MemberID: 8, UserID: 9}},
		Attempt:        2,
	}

	t.Run("SignedDelivery", func(t *testing.T) {
		t.Parallel()

		rc := &receiver{t: t}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL + "/hooks/absent", Secret: testSecret})
		require.NoError(t, err)
		require.NoError(t, n.Notify(ctx, notice))
		got := rc.all()
		require.Len(t, got, 1)
		require.Equal(t, notice, got[0].Notice)
		require.Equal(t, notice.IdempotencyKey, got[0].IdempotencyKey)
		require.Equal(t, "2", got[0].Attempt)
	})

	t.Run("RedirectIsAFailedDelivery", func(t *testing.T) {
		t.Parallel()

		// Following a 302 would turn the POST into a GET without the
		// notice, answered 200: a notice lost while counted delivered.
		var methods []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methods = append(methods, r.Method+" "+r.URL.Path)
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/landing", http.StatusFound)
			}
		}))
		defer srv.Close()
		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL + "/old", Secret: testSecret})
		require.NoError(t, err)
		err = n.Notify(ctx, notice)
		require.ErrorContains(t, err, "302")
		require.Equal(t, []string{"POST /old"}, methods)
	})

	t.Run("WrongSecretIsRejected", func(t *testing.T) {
		t.Parallel()

		srv := httptest.NewServer(&receiver{t: t})
		defer srv.Close()
		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL, Secret: "not-the-secret"})
		require.NoError(t, err)
		err = n.Notify(ctx, notice)
		require.ErrorContains(t, err, "401")
	})

	t.Run("VerifySignature", func(t *testing.T) {
		t.Parallel()

		body := []byte(`{"a":1}`)
		sig := attendance.Sign([]byte(testSecret), body)
		require.True(t, attendance.VerifySignature([]byte(testSecret), body, sig))
		require.False(t, attendance.VerifySignature([]byte(testSecret), []byte(`{"a":2}`), sig))
		require.False(t, attendance.VerifySignature([]byte("other"), body, sig))
		require.False(t, attendance.VerifySignature([]byte(testSecret), body, sig[len("sha256="):]))
		require.False(t, attendance.VerifySignature([]byte(testSecret), body, "sha256=zz"))
	})

	t.Run("ErrorsNeverShowTheSecret", func(t *testing.T) {
		t.Parallel()

		rc := &receiver{t: t}
		rc.down.Store(true)
		srv := httptest.NewServer(rc)
		defer srv.Close()
		cfg := attendance.WebhookConfig{URL: "http://user:hunter2@" + srv.Listener.Addr().String() + "/hook?token=tok123", Secret: testSecret}
		n, err := attendance.NewWebhookNotifier(cfg)
		require.NoError(t, err)
		err = n.Notify(ctx, notice)
		require.ErrorContains(t, err, "503")
		for _, s := range []string{testSecret, "hunter2", "tok123"} {
			require.NotContains(t, err.Error(), s)
		}

		// Nor does a connection error, which Go reports with the full URL.
		srv.Close()
		err = n.Notify(ctx, notice)
		require.Error(t, err)
		for _, s := range []string{testSecret, "hunter2", "tok123"} {
			require.NotContains(t, err.Error(), s)
		}

		// Nor the config, however it is printed.
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", slog.Any("webhook", cfg), slog.Any("secret", cfg.Secret))
		js, err := json.Marshal(cfg)
		require.NoError(t, err)
		for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.Secret), logged.String(), string(js)} {
			require.NotContains(t, out, testSecret)
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()

		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		defer close(release)
		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL, Secret: testSecret, Timeout: 50 * time.Millisecond})
		require.NoError(t, err)
		err = n.Notify(ctx, notice)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("InvalidConfig", func(t *testing.T) {
		t.Parallel()

		for _, tc := range []struct {
			cfg  attendance.WebhookConfig
			want string
		}{
			{attendance.WebhookConfig{Secret: testSecret}, "webhook URL is empty"},
			{attendance.WebhookConfig{URL: "ftp://host/x", Secret: testSecret}, "must be an http or https URL"},
			{attendance.WebhookConfig{URL: "http://host/x"}, "webhook secret is empty"},
			{attendance.WebhookConfig{URL: "http://host/x", Secret: testSecret, Timeout: -time.Second}, "webhook timeout -1s must not be negative"},
		} {
			_, err := attendance.NewWebhookNotifier(tc.cfg)
			require.ErrorIs(t, err, attendance.ErrInvalidParams)
			require.ErrorContains(t, err, tc.want)
		}
	})
}

// TestNotifierDownThenBack settles an event while the webhook receiver is
// down: the settlement commits at its deadline regardless, the notice is
// retried (River's retry, with a short test policy) while the receiver
// answers 503, and is delivered once it is back, with the same idempotency
// key on every attempt.
func TestNotifierDownThenBack(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	rc := &receiver{t: t}
	rc.down.Store(true)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	notifier, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL, Secret: testSecret, Timeout: 2 * time.Second})
	require.NoError(t, err)

	db := wassotest.NewDB(t, wassotest.Options{})
	client := startRunner(t, db, wassoriver.Config{Notifier: notifier})
	club, err := seed.CreateClub(ctx, db.Pool, "Chess club", 3, testNow.Add(-48*time.Hour))
	require.NoError(t, err)
	deadline := time.Now().Add(1500 * time.Millisecond).Truncate(time.Microsecond)
	event := djangoEvent(t, db.Pool, club.GenerationID, deadline)
	_, err = attendance.ScheduleEvent(ctx, db.Pool, client, event)
	require.NoError(t, err)

	// Settled while the receiver is down, and at least two deliveries
	// failed since.
	settlement := requireSettledFor(t, db.Pool, event, deadline)
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1 AND status = 3`, event))
	require.Eventually(t, func() bool { return len(rc.all()) >= 3 }, eventuallyWait, 20*time.Millisecond)
	for _, d := range rc.all() {
		require.Equal(t, http.StatusServiceUnavailable, d.Status)
	}

	rc.down.Store(false)
	require.Eventually(t, func() bool {
		got := rc.all()
		return got[len(got)-1].Status == http.StatusNoContent
	}, eventuallyWait, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.notify_absent' AND state = 'completed'`) == 1
	}, eventuallyWait, 20*time.Millisecond)

	got := rc.all()
	key := attendance.AbsentIdempotencyKey(event, deadline, settlement.SettledAt)
	delivered := 0
	for i, d := range got {
		require.Equal(t, key, d.IdempotencyKey, "one key for every attempt")
		require.Equal(t, fmt.Sprint(i+1), d.Attempt)
		if d.Status == http.StatusNoContent {
			delivered++
			require.Equal(t, "Chess club", d.Notice.ClubName)
			var ids []int64
			for _, m := range d.Notice.Members {
				ids = append(ids, m.MappingID)
			}
			require.Equal(t, club.MappingIDs, ids, "nothing lost")
		}
	}
	require.Equal(t, 1, delivered)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.notify_absent'`))
	after, ok := settlementOf(t, db.Pool, event)
	require.True(t, ok)
	require.Equal(t, settlement, after, "the settlement is untouched by the failed deliveries")
}
