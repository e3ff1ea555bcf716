package runner

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progressLogEvery is the least time between two progress log lines when
// stderr is not a terminal: a backlog of thousands of batches logs a line
// every few seconds, not one per batch.
const progressLogEvery = 2 * time.Second

// progressKind names what a progress counts, in its lines.
type progressKind struct {
	// verb and unit make "settled 10/20 events".
	verb, unit string
	// rows is whether the work writes rows worth counting.
	rows bool
}

var (
	sweepProgress = progressKind{verb: "settled", unit: "events", rows: true}
	purgeProgress = progressKind{verb: "deleted", unit: "jobs"}
)

// progress reports a long piece of work done in batches (a sweep over a
// backlog): on a terminal, one line redrawn in place after every batch; in
// a log, one structured line per batch at most every progressLogEvery. It
// is fed from attendance.SettleParams.OnBatch, which the library calls for
// one batch at a time, but it locks anyway so that it is safe from any
// caller.
type progress struct {
	// out is where the terminal line is drawn (stderr), nil in log mode.
	out    io.Writer
	logger *slog.Logger
	// msg names the work in log lines ("sweep progress").
	msg  string
	kind progressKind
	// quiet is how long the work runs before anything is reported, so
	// that work done in a blink prints its result alone.
	quiet time.Duration
	// now is the clock, time.Now but in tests.
	now func() time.Time

	mu      sync.Mutex
	start   time.Time
	lastLog time.Time
	due     int
	done    int
	rows    int
	drawn   bool
}

// newProgress returns a progress for due units of work, drawn on stderr
// when it is a terminal and logged on logger otherwise.
func newProgress(stderr io.Writer, logger *slog.Logger, kind progressKind, msg string, due int) *progress {
	p := &progress{logger: logger, kind: kind, msg: msg, due: due, now: time.Now, start: time.Now()}
	if writerIsTerminal(stderr) {
		p.out = stderr
	}
	return p
}

// add records a batch of done units that wrote rows rows, and reports it.
func (p *progress) add(done, rows int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += done
	p.rows += rows
	// Events that came due after the count was taken are settled too.
	p.due = max(p.due, p.done)
	now := p.now()
	elapsed := now.Sub(p.start)
	if elapsed < p.quiet {
		return
	}
	if p.out != nil {
		// \r back to the start of the line, \x1b[K clears what a longer
		// previous line left after this one.
		fmt.Fprintf(p.out, "\r%s\x1b[K", formatProgress(p.kind, p.done, p.due, p.rows, elapsed))
		p.drawn = true
		return
	}
	if !p.lastLog.IsZero() && now.Sub(p.lastLog) < progressLogEvery {
		return
	}
	p.lastLog = now
	attrs := []any{p.kind.verb + "_" + p.kind.unit, p.done, "total_" + p.kind.unit, p.due}
	if p.kind.rows {
		attrs = append(attrs, "rows", p.rows)
	}
	p.logger.Info(p.msg, append(attrs, p.kind.unit+"_per_second", rate(p.done, elapsed),
		"elapsed", elapsed.Round(time.Millisecond), "eta", eta(p.done, p.due, elapsed).Round(time.Second))...)
}

// finish replaces the terminal line with a one-line summary; in log mode
// the caller's own summary line is the last word, and finish does nothing.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil || !p.drawn {
		return
	}
	elapsed := p.now().Sub(p.start)
	fmt.Fprintf(p.out, "\r\x1b[K%s\n", formatSummary(p.kind, p.done, p.due, p.rows, elapsed))
}

// formatProgress is the live progress line: units done out of the total
// (events settled out of those due), rows written, rate and estimated time
// left.
func formatProgress(kind progressKind, done, due, rows int, elapsed time.Duration) string {
	pct := 100.0
	if due > 0 {
		pct = 100 * float64(done) / float64(due)
	}
	left := "?"
	if done > 0 {
		left = eta(done, due, elapsed).Round(time.Second).String()
	}
	return fmt.Sprintf("%s %d/%d %s (%.0f%%), %s%.0f %s/s, %s left",
		kind.verb, done, due, kind.unit, pct, rowsPart(kind, rows), rate(done, elapsed), kind.unit, left)
}

// formatSummary is the line that replaces the progress line at the end.
func formatSummary(kind progressKind, done, due, rows int, elapsed time.Duration) string {
	return fmt.Sprintf("%s %d of %d %s, %sin %s (%.0f %s/s)",
		kind.verb, done, due, kind.unit, rowsPart(kind, rows), elapsed.Round(time.Millisecond), rate(done, elapsed), kind.unit)
}

func rowsPart(kind progressKind, rows int) string {
	if !kind.rows {
		return ""
	}
	return fmt.Sprintf("%d rows, ", rows)
}

func rate(done int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(done) / elapsed.Seconds()
}

// eta extrapolates the time left from the rate so far; zero when nothing
// is left or nothing is done yet to extrapolate from.
func eta(done, due int, elapsed time.Duration) time.Duration {
	if done <= 0 || due <= done {
		return 0
	}
	return time.Duration(float64(elapsed) * float64(due-done) / float64(done))
}

// writerIsTerminal reports whether w is a terminal, for progress lines
// redrawn in place; a pipe or a file gets log lines instead.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressQuiet is how long purge and backfill run before they report
// anything: most finish well within it and print what they always did.
const progressQuiet = time.Second

// slowNotice is for work done in one transaction, whose progress cannot
// be shown as it goes: if the work is still running after quiet, it logs
// msg with attrs, a start line, and the finish function it returns then
// logs finishMsg with the elapsed time. Work that ends sooner logs
// nothing.
func slowNotice(logger *slog.Logger, quiet time.Duration, msg string, attrs ...any) (finish func(finishMsg string, attrs ...any)) {
	var (
		mu       sync.Mutex
		started  bool
		finished bool
	)
	start := time.Now()
	timer := time.AfterFunc(quiet, func() {
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			started = true
			logger.Info(msg, attrs...)
		}
	})
	return func(finishMsg string, attrs ...any) {
		timer.Stop()
		mu.Lock()
		defer mu.Unlock()
		finished = true
		if started {
			logger.Info(finishMsg, append(attrs, "elapsed", time.Since(start).Round(time.Millisecond))...)
		}
	}
}
