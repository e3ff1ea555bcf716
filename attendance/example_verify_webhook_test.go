package attendance_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wasso/scheduler/attendance"
)

// A receiver of WebhookNotifier's deliveries: it verifies the raw body and
// the webhook-* headers before decoding anything, and answers 401 to a
// forged, tampered or replayed request. The requests below are signed the
// way the notifier signs them.
func ExampleVerifyWebhook() {
	// The runner's notify.webhook.secret (here the Standard Webhooks
	// specification's example secret).
	secret := attendance.Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

	receive := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		err = attendance.VerifyWebhook(secret, r.Header, body, time.Now(), attendance.WebhookToleranceDefault)
		switch {
		case errors.Is(err, attendance.ErrWebhookTimestamp):
			http.Error(w, "stale or future request", http.StatusUnauthorized)
			return
		case err != nil:
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var notice attendance.AbsentNotice
		if err := json.Unmarshal(body, &notice); err != nil {
			http.Error(w, "bad notice", http.StatusBadRequest)
			return
		}
		// A real receiver drops a webhook-id it has handled already (a
		// retry), then pushes to notice.Members.
		w.WriteHeader(http.StatusNoContent)
	})

	post := func(body []byte, sentAt time.Time) *http.Request {
		sig, err := attendance.SignWebhook(secret, "wasso-absent-1-2-3", sentAt, body)
		if err != nil {
			panic(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/hooks/absent", bytes.NewReader(body))
		r.Header.Set(attendance.WebhookIDHeader, "wasso-absent-1-2-3")
		r.Header.Set(attendance.WebhookTimestampHeader, fmt.Sprint(sentAt.Unix()))
		r.Header.Set(attendance.WebhookSignatureHeader, sig)
		return r
	}
	answer := func(r *http.Request) string {
		w := httptest.NewRecorder()
		receive.ServeHTTP(w, r)
		return strings.TrimSpace(fmt.Sprint(w.Code, " ", w.Body.String()))
	}

	body := []byte(`{"idempotency_key":"wasso-absent-1-2-3","event_id":1,"members":[{"generation_mapping_id":7,"member_id":8,"user_id":9}]}`)
	fresh := post(body, time.Now())
	fmt.Println("delivery:", answer(fresh))

	tampered := post(body, time.Now())
	tampered.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte(`"user_id":9`), []byte(`"user_id":6`), 1)))
	fmt.Println("tampered:", answer(tampered))

	replayed := post(body, time.Now().Add(-time.Hour))
	fmt.Println("replayed an hour later:", answer(replayed))
	// Output:
	// delivery: 204
	// tampered: 401 bad signature
	// replayed an hour later: 401 stale or future request
}
