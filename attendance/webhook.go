package attendance

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
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers. The three webhook-* headers are those of the
// Standard Webhooks specification (standardwebhooks.com), so that a
// receiver can check deliveries with any library implementing it (Svix's
// and the specification's own, in many languages) as well as with
// VerifyWebhook.
const (
	// WebhookIDHeader carries the message id: AbsentNotice.IdempotencyKey,
	// the same for every attempt of one notice, so a receiver can drop a
	// retry of a delivery it already handled. It is signed.
	WebhookIDHeader = "webhook-id"
	// WebhookTimestampHeader carries the Unix time, in seconds, at which
	// the attempt was sent. It is signed, and a receiver refuses it when it
	// is further than a tolerance from its own clock (see VerifyWebhook):
	// a captured request cannot be replayed later.
	WebhookTimestampHeader = "webhook-timestamp"
	// WebhookSignatureHeader carries "v1," and the base64 HMAC-SHA256 of
	// "<webhook-id>.<webhook-timestamp>.<body>" under the shared secret's
	// key (see Secret.WebhookKey). The specification allows several
	// space-separated signatures, any of which may match.
	WebhookSignatureHeader = "webhook-signature"
	// IdempotencyKeyHeader repeats AbsentNotice.IdempotencyKey for
	// receivers that deduplicate on this common header. Unlike
	// WebhookIDHeader it is not signed.
	IdempotencyKeyHeader = "Idempotency-Key"
	// AttemptHeader carries the delivery attempt, from 1. Not signed.
	AttemptHeader = "X-Wasso-Attempt"
	// EventTypeHeader names what the body is: "attendance.absent". Not
	// signed.
	EventTypeHeader = "X-Wasso-Event"
)

const (
	// WebhookTimeoutDefault bounds one webhook request by default.
	WebhookTimeoutDefault = 10 * time.Second
	// WebhookToleranceDefault is how far a delivery's webhook-timestamp may
	// be from the receiver's clock, either way, before VerifyWebhook
	// refuses it: the Standard Webhooks recommendation. It absorbs clock
	// skew and a slow network while keeping the window in which a captured
	// request could be replayed short.
	WebhookToleranceDefault = 5 * time.Minute
	// WebhookSecretPrefix marks a secret in the Standard Webhooks form:
	// the prefix followed by the base64 of the key.
	WebhookSecretPrefix = "whsec_"
)

// Errors of VerifyWebhook, wrapped with the reason. A receiver answers
// either with a 4xx and drops the request.
var (
	// ErrWebhookSignature: a webhook-id or webhook-signature header is
	// missing, or no signature matches the body and headers under the
	// secret (the body or a signed header was changed, or the secret is
	// another one).
	ErrWebhookSignature = errors.New("webhook signature does not match")
	// ErrWebhookTimestamp: the webhook-timestamp header is missing or not
	// a Unix time, or, the signature being right, the time is further from
	// the receiver's clock than the tolerance: an old request replayed, or
	// a clock badly off.
	ErrWebhookTimestamp = errors.New("webhook timestamp outside tolerance")
)

// Secret is a shared secret. It prints, logs and marshals as "[redacted]"
// so that a config dumped with %+v, slog or JSON never shows it.
//
// As a webhook secret it comes in one of two forms (see WebhookKey): the
// Standard Webhooks form, "whsec_" followed by the base64 of the key, which
// is what a receiver using a Standard Webhooks library expects; or any
// other string, used as the key byte for byte.
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// GoString returns "[redacted]", for %#v.
func (Secret) GoString() string { return "[redacted]" }

// LogValue returns "[redacted]", for slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON returns "[redacted]" as a JSON string.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// WebhookKey returns the HMAC key of a webhook secret: the base64-decoded
// bytes after the prefix of a "whsec_" secret (standard base64, padded, as
// the specification and its libraries write it), else the secret's own
// bytes. It fails, wrapping ErrInvalidParams and never quoting the secret,
// for an empty secret and for a "whsec_" secret that is not valid base64
// or decodes to nothing: such a secret is almost certainly pasted wrong,
// and signing with its raw bytes would only fail at every receiver.
func (s Secret) WebhookKey() ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: webhook secret is empty", ErrInvalidParams)
	}
	encoded, ok := strings.CutPrefix(string(s), WebhookSecretPrefix)
	if !ok {
		return []byte(s), nil
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// The decoder's message gives an offset, never the input.
		return nil, fmt.Errorf("%w: webhook secret starts with %q but the rest is not valid base64 (%v)", ErrInvalidParams, WebhookSecretPrefix, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: webhook secret %q has no key after the prefix", ErrInvalidParams, WebhookSecretPrefix)
	}
	return key, nil
}

// SignWebhook returns the webhook-signature value of a message sent at
// timestamp: "v1," and the base64 HMAC-SHA256, under the secret's key, of
// "<id>.<unix seconds>.<body>". WebhookNotifier signs each attempt with it;
// a backend can use it to build test requests for its receiver.
func SignWebhook(secret Secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := secret.WebhookKey()
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(webhookMAC(key, id, strconv.FormatInt(timestamp.Unix(), 10), body)), nil
}

func webhookMAC(key []byte, id, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifyWebhook checks a delivery as a receiver must before trusting it:
// header and body are the request's, body read raw, before any decoding
// (re-encoded JSON would not match). It returns nil when one of the
// webhook-signature header's "v1," signatures is the HMAC of the message
// under the secret's key (compared in constant time) and the signed
// webhook-timestamp is within tolerance of now, either way; else an error
// wrapping ErrWebhookSignature or ErrWebhookTimestamp, in that order of
// checking, so that ErrWebhookTimestamp means an authentic request that is
// too old (a replay) or from the future. A tolerance of zero or less means
// WebhookToleranceDefault. A secret that WebhookKey refuses is an error
// wrapping ErrInvalidParams.
//
// The check does not remember ids: within the tolerance the same request
// verifies again, so a receiver drops deliveries whose webhook-id it has
// handled already (retries carry the same id, with a new timestamp and
// signature).
func VerifyWebhook(secret Secret, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := secret.WebhookKey()
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = WebhookToleranceDefault
	}
	id, timestamp, signatures := header.Get(WebhookIDHeader), header.Get(WebhookTimestampHeader), header.Get(WebhookSignatureHeader)
	switch {
	case id == "":
		return fmt.Errorf("%w: no %s header", ErrWebhookSignature, WebhookIDHeader)
	case timestamp == "":
		return fmt.Errorf("%w: no %s header", ErrWebhookTimestamp, WebhookTimestampHeader)
	case signatures == "":
		return fmt.Errorf("%w: no %s header", ErrWebhookSignature, WebhookSignatureHeader)
	}
	want := webhookMAC(key, id, timestamp, body)
	matched := false
	for sig := range strings.FieldsSeq(signatures) {
		encoded, ok := strings.CutPrefix(sig, "v1,")
		if !ok {
			continue // another scheme (v1a is asymmetric): not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		// Every signature is compared, matched or not, so that the time
		// taken does not say which one matched.
		if hmac.Equal(got, want) {
			matched = true
		}
	}
	if !matched {
		return fmt.Errorf("%w: no v1 signature in %s matches the message under the secret", ErrWebhookSignature, WebhookSignatureHeader)
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not a Unix time in seconds", ErrWebhookTimestamp, WebhookTimestampHeader, timestamp)
	}
	sent := time.Unix(sec, 0)
	switch age := now.Sub(sent); {
	case age > tolerance:
		return fmt.Errorf("%w: sent %s ago, more than the tolerance of %s", ErrWebhookTimestamp, age.Truncate(time.Second), tolerance)
	case -age > tolerance:
		return fmt.Errorf("%w: sent %s in the future, more than the tolerance of %s", ErrWebhookTimestamp, (-age).Truncate(time.Second), tolerance)
	}
	return nil
}

// WebhookConfig configures a WebhookNotifier.
type WebhookConfig struct {
	// URL receives the POSTs. Required; http or https. A token in its
	// query string or user info is never shown: errors name the URL
	// without them.
	URL string
	// Secret signs each attempt (see WebhookSignatureHeader and
	// Secret.WebhookKey for its two forms). Required.
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
// JSON, signed the Standard Webhooks way: the notice's idempotency key as
// webhook-id, and a webhook-timestamp and webhook-signature computed
// afresh for every attempt, so a retry is accepted however long River's
// backoff waited while a captured request goes stale in minutes. Any
// answer but 2xx, a timeout or a network error is returned as an error,
// so River retries the notice with its backoff. Errors name the URL
// without its user info or query (where tokens tend to live), and never
// the secret.
type WebhookNotifier struct {
	client   *http.Client
	endpoint string
	redacted string
	// hidden are the URL's user info password and query values, scrubbed
	// from what a receiver answers (an error page may echo the URL).
	hidden  []string
	key     []byte
	timeout time.Duration
	// now is time.Now but in tests.
	now func() time.Time
}

// NewWebhookNotifier returns a WebhookNotifier, or an error naming the
// config field that is missing or wrong.
func NewWebhookNotifier(config WebhookConfig) (*WebhookNotifier, error) {
	if config.URL == "" {
		return nil, fmt.Errorf("%w: webhook URL is empty", ErrInvalidParams)
	}
	u, err := url.Parse(config.URL)
	if err != nil {
		// url.Parse's message quotes the URL, token and all.
		return nil, fmt.Errorf("%w: webhook URL does not parse", ErrInvalidParams)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: webhook URL %s must be an http or https URL", ErrInvalidParams, redactURL(u))
	}
	key, err := config.Secret.WebhookKey()
	if err != nil {
		return nil, err
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
		hidden:   URLSecrets(config.URL),
		key:      key,
		timeout:  config.Timeout,
		now:      time.Now,
	}, nil
}

// redactURL drops user info, query and fragment.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// RedactWebhookURL returns the URL as WebhookNotifier's errors name it:
// without user info, query or fragment, where tokens tend to live. A URL
// that does not parse gives "(unparsable URL)".
func RedactWebhookURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return redactURL(u)
}

// URLSecrets returns the parts of a URL that may be credentials: the user
// info password and the raw query, its values and its fragment, each
// percent-decoded or not, longer than three characters (shorter ones would
// make scrubbing them mangle everything else). Loggers add them to what
// they redact, as a second line of defence behind RedactWebhookURL.
func URLSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	add := func(s ...string) {
		for _, v := range s {
			if len(v) > 3 {
				out = append(out, v)
			}
		}
	}
	if p, ok := u.User.Password(); ok {
		_, escaped, _ := strings.Cut(url.UserPassword("", p).String(), ":")
		add(p, escaped)
	}
	add(u.RawQuery, u.Fragment, u.RawFragment)
	for _, vs := range u.Query() {
		for _, v := range vs {
			add(v, url.QueryEscape(v))
		}
	}
	return out
}

// Notify POSTs the notice.
func (n *WebhookNotifier) Notify(ctx context.Context, notice AbsentNotice) error {
	if notice.IdempotencyKey == "" {
		return fmt.Errorf("webhook %s: %w: notice has no idempotency key to send as %s", n.redacted, ErrInvalidParams, WebhookIDHeader)
	}
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
	timestamp := strconv.FormatInt(n.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wasso-scheduler")
	req.Header.Set(WebhookIDHeader, notice.IdempotencyKey)
	req.Header.Set(WebhookTimestampHeader, timestamp)
	req.Header.Set(WebhookSignatureHeader, "v1,"+base64.StdEncoding.EncodeToString(webhookMAC(n.key, notice.IdempotencyKey, timestamp, body)))
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
		return fmt.Errorf("webhook %s: answered %s: %s", n.redacted, resp.Status, n.scrub(strings.TrimSpace(string(snippet))))
	}
	return nil
}

// scrub removes the URL's credentials from text the receiver sent, which
// ends up in River's job errors and the logs.
func (n *WebhookNotifier) scrub(s string) string {
	for _, h := range n.hidden {
		s = strings.ReplaceAll(s, h, "[redacted]")
	}
	return s
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

var _ Notifier = (*WebhookNotifier)(nil)
