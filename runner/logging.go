package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// newLogger returns the runner's logger: text or JSON on w, snake_case
// keys, every string scrubbed of the secrets (database and HTTP
// passwords) so that no library's log line can leak one.
func newLogger(w io.Writer, format, level string, r *redactor) *slog.Logger {
	opts := &slog.HandlerOptions{
		Level: logLevels[level],
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Value.Kind() {
			case slog.KindString:
				if s := a.Value.String(); r.needed(s) {
					a.Value = slog.StringValue(r.redact(s))
				}
			case slog.KindAny:
				// Errors and Stringers are formatted here so that what
				// they print is scrubbed too.
				switch v := a.Value.Any().(type) {
				case error:
					a.Value = slog.StringValue(r.redact(v.Error()))
				case fmt.Stringer:
					a.Value = slog.StringValue(r.redact(v.String()))
				}
			}
			return a
		},
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redactor removes secrets from text bound for logs and error messages.
type redactor struct {
	secrets []string
}

// userinfoPassword matches the password of a URL's userinfo
// ("postgres://user:PASSWORD@host"), and passwordKV that of a keyword/value
// connection string ("password=PASSWORD"), whatever the password is.
var (
	userinfoPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@`)
	passwordKV       = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)
)

func (r *redactor) add(secret string) {
	// Very short secrets would turn every log line into confetti; the
	// structural patterns above still catch them where they appear in a
	// connection string.
	if len(secret) >= 4 {
		r.secrets = append(r.secrets, secret)
	}
}

func (r *redactor) needed(s string) bool {
	if r == nil {
		return false
	}
	if strings.Contains(s, "://") || strings.Contains(strings.ToLower(s), "password") {
		return true
	}
	for _, secret := range r.secrets {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

func (r *redactor) redact(s string) string {
	if r == nil {
		return s
	}
	s = userinfoPassword.ReplaceAllString(s, "${1}xxxxx@")
	s = passwordKV.ReplaceAllString(s, "${1}xxxxx")
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	return s
}

// discardLogger is used before the configuration (and so the log format)
// is known.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logWriter adapts a logger to an io.Writer for libraries that log through
// the standard log package (net/http's server errors).
type logWriter struct {
	logger *slog.Logger
	msg    string
}

func (w logWriter) Write(p []byte) (int, error) {
	w.logger.Log(context.Background(), slog.LevelWarn, w.msg, slog.String("error", strings.TrimSpace(string(p))))
	return len(p), nil
}
