package runner

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table writes aligned columns, the way celery inspect and kubectl do.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(anySlice(header)...)
	return t
}

func (t *table) row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		s := fmt.Sprint(c)
		// A tab or newline inside a cell would break the columns.
		s = strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
		if s == "" {
			s = "-"
		}
		parts[i] = s
	}
	fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fmtTime prints an instant in the configured zone; the zero time and nil
// print as "-".
func (a *app) fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.In(a.cfg.TimeZone).Format("2006-01-02 15:04:05 MST")
}

func (a *app) fmtTimeV(t time.Time) string { return a.fmtTime(&t) }

// fmtAge prints how long ago (or, negative, in how long) t is, rounded.
func fmtAge(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := now.Sub(*t)
	suffix := " ago"
	if d < 0 {
		d, suffix = -d, ""
		return "in " + roundDuration(d).String()
	}
	return roundDuration(d).String() + suffix
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	default:
		return d.Round(100 * time.Millisecond)
	}
}

// errNotConfirmed is returned when a destructive command is not confirmed.
var errNotConfirmed = errors.New("not confirmed")

// confirm asks a yes/no question on stderr and reads the answer from
// stdin, which must be a terminal: without one (cron, CI, a pipe) nobody
// is there to answer, and the caller must pass --yes instead. Only "y" or
// "yes" confirm; anything else, or no answer, refuses.
func (a *app) confirm(question, yesFlag string) error {
	if !isTerminal(a.stdin) {
		return fmt.Errorf("%w: stdin is not a terminal, so nobody can answer %q; pass %s to go ahead", errNotConfirmed, question, yesFlag)
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(a.stderr)
		return fmt.Errorf("%w: no answer", errNotConfirmed)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	default:
		return fmt.Errorf("%w: answered %q", errNotConfirmed, strings.TrimSpace(line))
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}
