package attendance_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
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

const (
	// testSecret is a plain secret, used as the key byte for byte.
	testSecret = "s3cr3t-shared-with-the-backend"
	// testWhsec is a secret in the Standard Webhooks form, and testWhsecKey
	// its key.
	testWhsec = "whsec_" + "c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE="
)

var testWhsecKey = []byte("secret-key-of-thirty-two-bytes!!")

// delivery is one request the test receiver got.
type delivery struct {
	Notice         attendance.AbsentNotice
	ID             string
	Timestamp      string
	Signature      string
	IdempotencyKey string
	Attempt        string
	Status         int
	// Header and Body are the request as received, for replays.
	Header http.Header
	Body   []byte
}

// receiver is a webhook endpoint that checks each request the way a
// receiver must (attendance.VerifyWebhook, and an independent computation
// of the Standard Webhooks signature under key), answers 503 while down,
// and records what it got and what it refused. skew moves its clock.
type receiver struct {
	secret attendance.Secret
	key    []byte
	down   atomic.Bool
	skew   atomic.Int64 // time.Duration

	mu         sync.Mutex
	deliveries []delivery
	refused    []error
}

func newReceiver(secret attendance.Secret, key []byte) *receiver {
	return &receiver{secret: secret, key: key}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	now := time.Now().Add(time.Duration(rc.skew.Load()))
	err = attendance.VerifyWebhook(rc.secret, r.Header, body, now, attendance.WebhookToleranceDefault)
	if err == nil && !independentlyValid(rc.key, r.Header, body) {
		err = errors.New("VerifyWebhook accepted what the independent check refused")
	}
	if err != nil {
		rc.mu.Lock()
		rc.refused = append(rc.refused, err)
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	d := delivery{
		ID:             r.Header.Get(attendance.WebhookIDHeader),
		Timestamp:      r.Header.Get(attendance.WebhookTimestampHeader),
		Signature:      r.Header.Get(attendance.WebhookSignatureHeader),
		IdempotencyKey: r.Header.Get(attendance.IdempotencyKeyHeader),
		Attempt:        r.Header.Get(attendance.AttemptHeader),
		Header:         r.Header.Clone(),
		Body:           body,
	}
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

// independentlyValid computes the Standard Webhooks signature from the
// specification, without the package's code: base64 of HMAC-SHA256 of
// "id.timestamp.body", in a "v1," entry of the signature header.
func independentlyValid(key []byte, h http.Header, body []byte) bool {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return slices.Contains(strings.Fields(h.Get("webhook-signature")), want)
}

func (rc *receiver) all() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.deliveries...)
}

func (rc *receiver) refusals() []error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]error(nil), rc.refused...)
}

// replay POSTs a captured request again, as an attacker who saw it would,
// and returns the status.
func replay(t *testing.T, url string, header http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
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

	// Both forms of secret sign deliveries that a receiver with the same
	// secret accepts, and that the specification's computation accepts
	// with the key the form stands for.
	for _, tc := range []struct {
		name   string
		secret attendance.Secret
		key    []byte
	}{
		{"PlainSecret", testSecret, []byte(testSecret)},
		{"WhsecSecret", testWhsec, testWhsecKey},
	} {
		t.Run("SignedDelivery"+tc.name, func(t *testing.T) {
			t.Parallel()

			rc := newReceiver(tc.secret, tc.key)
			srv := httptest.NewServer(rc)
			defer srv.Close()
			n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL + "/hooks/absent", Secret: tc.secret})
			require.NoError(t, err)
			before := time.Now().Unix()
			require.NoError(t, n.Notify(ctx, notice))
			require.Empty(t, rc.refusals())
			got := rc.all()
			require.Len(t, got, 1)
			require.Equal(t, notice, got[0].Notice)
			require.Equal(t, notice.IdempotencyKey, got[0].ID, "the idempotency key is the message id")
			require.Equal(t, notice.IdempotencyKey, got[0].IdempotencyKey)
			require.Equal(t, "2", got[0].Attempt)
			ts, err := strconv.ParseInt(got[0].Timestamp, 10, 64)
			require.NoError(t, err, "webhook-timestamp is Unix seconds")
			require.GreaterOrEqual(t, ts, before)
			require.LessOrEqual(t, ts, time.Now().Unix())
		})
	}

	t.Run("StandardWebhooksTestVector", func(t *testing.T) {
		t.Parallel()

		// The specification's published vector: what a receiver's
		// Standard Webhooks library computes, so ours must match it to
		// the byte.
		secret := attendance.Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
		sent := time.Unix(1614265330, 0)
		body := []byte(`{"test": 2432232314}`)
		sig, err := attendance.SignWebhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", sent, body)
		require.NoError(t, err)
		require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)
		h := http.Header{}
		h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		h.Set("webhook-timestamp", "1614265330")
		h.Set("webhook-signature", sig)
		require.NoError(t, attendance.VerifyWebhook(secret, h, body, sent, 0))

		// A signature list, as during a rotation: any v1 entry may match,
		// other schemes are skipped.
		h.Set("webhook-signature", "v1a,"+sig[3:]+" v1,bm9wZQ== "+sig)
		require.NoError(t, attendance.VerifyWebhook(secret, h, body, sent, 0))
		h.Set("webhook-signature", "v1a,"+sig[3:]+" v1,bm9wZQ== v1,%%%")
		require.ErrorIs(t, attendance.VerifyWebhook(secret, h, body, sent, 0), attendance.ErrWebhookSignature)
	})

	t.Run("ForgedAndReplayedRequestsAreRejected", func(t *testing.T) {
		t.Parallel()

		rc := newReceiver(testWhsec, testWhsecKey)
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL, Secret: testWhsec})
		require.NoError(t, err)
		require.NoError(t, n.Notify(ctx, notice))
		captured := rc.all()[0]
		sentAt, err := strconv.ParseInt(captured.Timestamp, 10, 64)
		require.NoError(t, err)
		sent := time.Unix(sentAt, 0)

		// The capture itself still verifies: the tests below fail for
		// what they change, not for something else.
		require.Equal(t, http.StatusNoContent, replay(t, srv.URL, captured.Header, captured.Body))

		refusedWith := func(t *testing.T, want error, header http.Header, body []byte) {
			t.Helper()
			before := len(rc.refusals())
			require.Equal(t, http.StatusUnauthorized, replay(t, srv.URL, header, body))
			refused := rc.refusals()
			require.Len(t, refused, before+1)
			require.ErrorIs(t, refused[before], want)
			// And the same straight from VerifyWebhook.
			require.ErrorIs(t, attendance.VerifyWebhook(testWhsec, header, body, sent, 0), want)
		}
		with := func(key, value string) http.Header {
			h := captured.Header.Clone()
			if value == "" {
				h.Del(key)
			} else {
				h.Set(key, value)
			}
			return h
		}

		t.Run("TamperedBody", func(t *testing.T) {
			tampered := bytes.Replace(captured.Body, []byte(`"member_id":8`), []byte(`"member_id":9`), 1)
			require.NotEqual(t, captured.Body, tampered)
			refusedWith(t, attendance.ErrWebhookSignature, captured.Header, tampered)
		})
		t.Run("TamperedID", func(t *testing.T) {
			refusedWith(t, attendance.ErrWebhookSignature, with("webhook-id", "wasso-absent-1-2-4"), captured.Body)
		})
		t.Run("TimestampMovedToNow", func(t *testing.T) {
			// A replay with a fresh timestamp but the old signature.
			refusedWith(t, attendance.ErrWebhookSignature, with("webhook-timestamp", strconv.FormatInt(sentAt+1, 10)), captured.Body)
		})
		t.Run("MissingHeaders", func(t *testing.T) {
			refusedWith(t, attendance.ErrWebhookSignature, with("webhook-id", ""), captured.Body)
			refusedWith(t, attendance.ErrWebhookSignature, with("webhook-signature", ""), captured.Body)
			refusedWith(t, attendance.ErrWebhookTimestamp, with("webhook-timestamp", ""), captured.Body)
			refusedWith(t, attendance.ErrWebhookSignature, with("webhook-signature", "sha256=00"), captured.Body)
		})
		t.Run("WrongSecret", func(t *testing.T) {
			other, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL, Secret: testSecret})
			require.NoError(t, err)
			before := len(rc.refusals())
			require.ErrorContains(t, other.Notify(ctx, notice), "401")
			require.ErrorIs(t, rc.refusals()[before], attendance.ErrWebhookSignature)
			require.ErrorIs(t, attendance.VerifyWebhook(testSecret, captured.Header, captured.Body, sent, 0), attendance.ErrWebhookSignature)
			// What counts is the key: the whsec form's text taken as a
			// plain secret is another key, while the decoded key given as
			// a plain secret is the same one.
			require.ErrorIs(t, attendance.VerifyWebhook(attendance.Secret(strings.TrimPrefix(testWhsec, "whsec_")), captured.Header, captured.Body, sent, 0), attendance.ErrWebhookSignature)
			require.NoError(t, attendance.VerifyWebhook(attendance.Secret(testWhsecKey), captured.Header, captured.Body, sent, 0))
		})
	})

	t.Run("StaleAndFutureTimestampsAreRejected", func(t *testing.T) {
		t.Parallel()

		rc := newReceiver(testWhsec, testWhsecKey)
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL, Secret: testWhsec})
		require.NoError(t, err)
		require.NoError(t, n.Notify(ctx, notice))
		captured := rc.all()[0]

		// The captured request replayed six minutes later, by the
		// receiver's clock: authentic, and refused as stale.
		rc.skew.Store(int64(6 * time.Minute))
		require.Equal(t, http.StatusUnauthorized, replay(t, srv.URL, captured.Header, captured.Body))
		require.ErrorIs(t, rc.refusals()[0], attendance.ErrWebhookTimestamp)
		require.ErrorContains(t, rc.refusals()[0], "ago")
		// Four minutes later it would still pass: the tolerance is five.
		rc.skew.Store(int64(4 * time.Minute))
		require.Equal(t, http.StatusNoContent, replay(t, srv.URL, captured.Header, captured.Body))
		rc.skew.Store(0)

		// Attempts sent by a clock ten minutes behind or ahead.
		for _, off := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
			attendance.SetWebhookClock(n, func() time.Time { return time.Now().Add(off) })
			before := len(rc.refusals())
			require.ErrorContains(t, n.Notify(ctx, notice), "401")
			require.ErrorIs(t, rc.refusals()[before], attendance.ErrWebhookTimestamp, "offset %s", off)
		}
		require.ErrorContains(t, rc.refusals()[len(rc.refusals())-1], "in the future")

		// A tolerance of its own.
		sent, err := strconv.ParseInt(captured.Timestamp, 10, 64)
		require.NoError(t, err)
		at := time.Unix(sent, 0).Add(90 * time.Second)
		require.NoError(t, attendance.VerifyWebhook(testWhsec, captured.Header, captured.Body, at, 0))
		require.ErrorIs(t, attendance.VerifyWebhook(testWhsec, captured.Header, captured.Body, at, time.Minute), attendance.ErrWebhookTimestamp)
	})

	t.Run("EachAttemptIsSignedAfresh", func(t *testing.T) {
		t.Parallel()

		// Two attempts of one notice, the second 90 seconds after the
		// first (River's backoff): same id, new timestamp and signature,
		// so a retry hours later is still accepted while the first
		// attempt, captured, goes stale.
		rc := newReceiver(testWhsec, testWhsecKey)
		rc.down.Store(true)
		srv := httptest.NewServer(rc)
		defer srv.Close()
		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: srv.URL, Secret: testWhsec})
		require.NoError(t, err)
		start := time.Now()
		attendance.SetWebhookClock(n, func() time.Time { return start })
		require.ErrorContains(t, n.Notify(ctx, notice), "503")
		attendance.SetWebhookClock(n, func() time.Time { return start.Add(90 * time.Second) })
		rc.skew.Store(int64(90 * time.Second))
		rc.down.Store(false)
		require.NoError(t, n.Notify(ctx, notice))

		got := rc.all()
		require.Len(t, got, 2)
		require.Equal(t, got[0].ID, got[1].ID)
		require.Equal(t, strconv.FormatInt(start.Unix(), 10), got[0].Timestamp)
		require.Equal(t, strconv.FormatInt(start.Unix()+90, 10), got[1].Timestamp)
		require.NotEqual(t, got[0].Signature, got[1].Signature)
		late := start.Add(6 * time.Minute)
		require.ErrorIs(t, attendance.VerifyWebhook(testWhsec, got[0].Header, got[0].Body, late, 0), attendance.ErrWebhookTimestamp)
		require.NoError(t, attendance.VerifyWebhook(testWhsec, got[1].Header, got[1].Body, late, 0))
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

	t.Run("ErrorsNeverShowTheSecret", func(t *testing.T) {
		t.Parallel()

		rc := newReceiver(testSecret, []byte(testSecret))
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

		// Nor does a receiver's answer that echoes the URL.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no route for "+r.URL.String(), http.StatusNotFound)
		}))
		defer echo.Close()
		e, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: echo.URL + "/hook?token=tok123&sig=a%2Fb%3Dc", Secret: testSecret})
		require.NoError(t, err)
		err = e.Notify(ctx, notice)
		require.ErrorContains(t, err, "404")
		require.ErrorContains(t, err, "no route for /hook?")
		for _, s := range []string{"tok123", "a/b=c", "a%2Fb%3Dc"} {
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
		require.Equal(t, "http://"+srv.Listener.Addr().String()+"/hook", attendance.RedactWebhookURL(cfg.URL))
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
			{attendance.WebhookConfig{URL: "http://host/x", Secret: "whsec_not*base64!"}, `webhook secret starts with "whsec_" but the rest is not valid base64`},
			{attendance.WebhookConfig{URL: "http://host/x", Secret: "whsec_"}, "has no key after the prefix"},
			{attendance.WebhookConfig{URL: "http://host/x", Secret: testSecret, Timeout: -time.Second}, "webhook timeout -1s must not be negative"},
		} {
			_, err := attendance.NewWebhookNotifier(tc.cfg)
			require.ErrorIs(t, err, attendance.ErrInvalidParams)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "not*base64")
		}
		// VerifyWebhook refuses such a secret the same way.
		require.ErrorIs(t, attendance.VerifyWebhook("whsec_not*base64!", http.Header{}, nil, time.Now(), 0), attendance.ErrInvalidParams)
	})

	t.Run("NoticeWithoutIdempotencyKey", func(t *testing.T) {
		t.Parallel()

		n, err := attendance.NewWebhookNotifier(attendance.WebhookConfig{URL: "http://127.0.0.1:1/x", Secret: testSecret})
		require.NoError(t, err)
		bare := notice
		bare.IdempotencyKey = ""
		require.ErrorIs(t, n.Notify(ctx, bare), attendance.ErrInvalidParams)
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
	rc := newReceiver(testSecret, []byte(testSecret))
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
		n, err := queryCount(db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.notify_absent' AND state = 'completed'`)
		return err == nil && n == 1
	}, eventuallyWait, 20*time.Millisecond)

	got := rc.all()
	key := attendance.AbsentIdempotencyKey(event, deadline, settlement.SettledAt)
	delivered := 0
	for i, d := range got {
		require.Equal(t, key, d.IdempotencyKey, "one key for every attempt")
		require.Equal(t, key, d.ID, "one message id for every attempt")
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
