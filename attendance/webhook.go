package attendance

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Webhook request headers.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the
	// request body under the shared secret. Receivers check it with
	// VerifySignature before trusting the body.
	SignatureHeader = "X-Wasso-Signature"
	// IdempotencyKeyHeader carries AbsentNotice.IdempotencyKey, the same
	// for every attempt of one notice, so a receiver can drop a retry of a
	// delivery it already handled.
	IdempotencyKeyHeader = "Idempotency-Key"
	// AttemptHeader carries the delivery attempt, from 1.
	AttemptHeader = "X-Wasso-Attempt"
	// EventTypeHeader names what the body is: "attendance.absent".
	EventTypeHeader = "X-Wasso-Event"
)

// WebhookTimeoutDefault bounds one webhook request by default.
const WebhookTimeoutDefault = 10 * time.Second

// Secret is a shared secret. It prints, logs and marshals as "[redacted]"
// so that a config dumped with %+v, slog or JSON never shows it.
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// GoString returns "[redacted]", for %#v.
func (Secret) GoString() string { return "[redacted]" }

// LogValue returns "[redacted]", for slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON returns "[redacted]" as a JSON string.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// WebhookConfig configures a WebhookNotifier.
type WebhookConfig struct {
	// URL receives the POSTs. Required; http or https.
	URL string
	// Secret signs each body (see SignatureHeader). Required.
	Secret Secret
	// Timeout bounds one request, including reading the answer. Zero means
	// WebhookTimeoutDefault.
	Timeout time.Duration
	// Client sends the requests. Nil means a client of its own (not
	// http.DefaultClient, whose settings anything in the process may
	// change).
	Client *http.Client
}

// WebhookNotifier delivers notices as an HTTP POST of the AbsentNotice as
// JSON, signed with HMAC-SHA256 (SignatureHeader), with the idempotency
// key in IdempotencyKeyHeader. Any answer but 2xx, a timeout or a network
// error is returned as an error, so River retries the notice with its
// backoff. Errors name the URL without its user info or query (where
// tokens tend to live), and never the secret.
type WebhookNotifier struct {
	client   *http.Client
	endpoint string
	redacted string
	secret   []byte
	timeout  time.Duration
}

// NewWebhookNotifier returns a WebhookNotifier, or an error naming the
// config field that is missing or wrong.
func NewWebhookNotifier(config WebhookConfig) (*WebhookNotifier, error) {
	if config.URL == "" {
		return nil, fmt.Errorf("%w: webhook URL is empty", ErrInvalidParams)
	}
	u, err := url.Parse(config.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: webhook URL does not parse", ErrInvalidParams)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: webhook URL %s must be an http or https URL", ErrInvalidParams, redactURL(u))
	}
	if config.Secret == "" {
		return nil, fmt.Errorf("%w: webhook secret is empty", ErrInvalidParams)
	}
	if config.Timeout < 0 {
		return nil, fmt.Errorf("%w: webhook timeout %s must not be negative", ErrInvalidParams, config.Timeout)
	}
	if config.Timeout == 0 {
		config.Timeout = WebhookTimeoutDefault
	}
	client := config.Client
	if client == nil {
		client = &http.Client{
			// A redirect would turn the POST into a body-less GET whose
			// 2xx would count as delivered: a 3xx is a failed delivery
			// (the URL should be corrected), retried like any other.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &WebhookNotifier{
		client:   client,
		endpoint: u.String(),
		redacted: redactURL(u),
		secret:   []byte(config.Secret),
		timeout:  config.Timeout,
	}, nil
}

// redactURL drops user info, query and fragment.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// Notify POSTs the notice.
func (n *WebhookNotifier) Notify(ctx context.Context, notice AbsentNotice) error {
	body, err := json.Marshal(notice)
	if err != nil {
		return fmt.Errorf("webhook %s: encode notice: %w", n.redacted, err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: build request: %w", n.redacted, stripURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wasso-scheduler")
	req.Header.Set(SignatureHeader, Sign(n.secret, body))
	req.Header.Set(IdempotencyKeyHeader, notice.IdempotencyKey)
	req.Header.Set(AttemptHeader, fmt.Sprint(notice.Attempt))
	req.Header.Set(EventTypeHeader, "attendance.absent")
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", n.redacted, stripURL(err))
	}
	defer resp.Body.Close()
	// Read (a bounded part of) the answer so the connection can be reused,
	// and so a timeout covers a receiver that stalls mid-answer.
	snippet, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	if err != nil {
		return fmt.Errorf("webhook %s: read answer: %w", n.redacted, stripURL(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s: answered %s: %s", n.redacted, resp.Status, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// stripURL removes the *url.Error wrapper, whose message repeats the full
// URL (query and user info included).
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// Sign returns the SignatureHeader value of body under secret:
// "sha256=" followed by the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is the signature of body under
// secret, comparing in constant time. A receiver written in Go calls it
// with the raw request body, before decoding it.
func VerifySignature(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

var _ Notifier = (*WebhookNotifier)(nil)
