package runner

import (
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/river/schedule"
)

func (a *app) scheduleShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one schedule: its settings, counters and pause note, its next slots (with UTC offsets) and its latest runs",
		Long: fmt.Sprintf(`show prints everything about one schedule: its settings, its counters and
its pause note; its next %d slots in its zone, each with the zone's UTC offset,
a daylight saving time change marked; and its latest %d runs (jobs, as long as
River keeps them) with their state, attempts, duration and last error.
--json prints the same as the schedules page's JSON API.`, schedule.DescribeSlots, schedule.DescribeRuns),
		Example: `  wasso-runner schedule show attendance-sweep
  wasso-runner schedule show nightly-sweep --json`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			// The runs are listed through a River client.
			return a.withScheduleStore(ctx, true, func(pool *pgxpool.Pool, store *schedule.Store) error {
				d, err := store.Describe(ctx, pool, name)
				if err != nil {
					return scheduleError(name, err)
				}
				if asJSON {
					return printJSON(a.stdout, d)
				}
				return printDescription(a.stdout, d)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: the schedule's fields with next_slots, runs and as_of")
	return cmd
}

// printDescription writes a schedule's description: its fields, then its
// next slots and its latest runs as tables. Times are in the schedule's
// zone.
func printDescription(w io.Writer, d *schedule.Description) error {
	s := &d.Schedule
	zone := s.TimeZone
	state := "enabled"
	if !s.Enabled {
		state = "disabled"
	}
	if s.OneOff {
		state += ", one-off"
	}
	fields := [][2]string{
		{"schedule", s.Name},
		{"kind", s.Kind},
		{"timetable", timetable(s) + " (" + zone + ")"},
		{"state", state},
	}
	if p := s.Paused; p != nil {
		paused := fmtInZone(p.At, zone)
		if p.By != "" {
			paused += " by " + p.By
		}
		fields = append(fields, [2]string{"paused", paused})
		if p.Note != "" {
			fields = append(fields, [2]string{"note", p.Note})
		}
	}
	fields = append(fields,
		[2]string{"queue", fmt.Sprintf("%s, priority %d, max attempts %d", s.Queue, s.Priority, s.MaxAttempts)},
		[2]string{"policies", policiesText(s)},
	)
	if !s.BufferedSlot.IsZero() {
		fields = append(fields, [2]string{"buffered", fmtInZone(s.BufferedSlot, zone) + " (runs when the previous job finishes)"})
	}
	if !s.StartAt.IsZero() {
		fields = append(fields, [2]string{"from", fmtInZone(s.StartAt, zone)})
	}
	if !s.ExpiresAt.IsZero() {
		fields = append(fields, [2]string{"until", fmtInZone(s.ExpiresAt, zone)})
	}
	if args := strings.TrimSpace(string(s.Args)); args != "" && args != "{}" {
		fields = append(fields, [2]string{"args", args})
	}
	if s.Description != "" {
		fields = append(fields, [2]string{"description", s.Description})
	}
	last := fmtInZone(s.LastRunAt, zone)
	if s.LastJobID != 0 {
		last += fmt.Sprintf(" (job %d)", s.LastJobID)
	}
	fields = append(fields,
		[2]string{"counters", fmt.Sprintf("%d runs, %d skipped, %d missed", s.TotalRunCount, s.SkippedCount, s.MissedCount)},
		[2]string{"last run", last},
		[2]string{"next run", fmtInZone(s.NextRunAt, zone)},
	)
	t := newTable(w, "FIELD", "VALUE")
	for _, f := range fields {
		t.row(f[0], f[1])
	}
	if err := t.flush(); err != nil {
		return err
	}

	heading := "\nnext slots"
	if !s.Enabled {
		heading += " (disabled: the slots it would run if enabled now)"
	}
	fmt.Fprintln(w, heading+":")
	if len(d.NextSlots) == 0 {
		fmt.Fprintln(w, "(no slot left to run)")
	} else {
		t = newTable(w, "#", "IN "+strings.ToUpper(zone), "UTC OFFSET", "UTC", "CHANGE")
		for i, sl := range d.NextSlots {
			mark := ""
			if sl.OffsetChanged {
				mark = "DST change"
			}
			t.row(i+1, sl.Local.Format("2006-01-02 15:04:05 MST"), sl.Offset, schedule.FormatSlot(sl.At), mark)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nlatest runs:")
	if len(d.Runs) == 0 {
		fmt.Fprintln(w, "(none: no job enqueued yet, or River has deleted them)")
		return nil
	}
	t = newTable(w, "JOB", "SLOT", "STATE", "ATTEMPTS", "DURATION", "LAST ERROR")
	for _, r := range d.Runs {
		t.row(r.JobID, fmtInZone(r.Slot, zone), r.State, fmt.Sprintf("%d/%d", r.Attempt, r.MaxAttempts),
			runDuration(r), shortError(r.LastError))
	}
	return t.flush()
}

// runDuration is how long a run took, or has been running.
func runDuration(r schedule.Run) string {
	switch {
	case r.State == rivertype.JobStateRunning && !r.AttemptedAt.IsZero():
		return "running for " + roundDuration(r.Duration).String()
	case r.Duration > 0:
		return roundDuration(r.Duration).String()
	default:
		return "-"
	}
}

// shortError is the first line of a job's error, cut to fit a table.
func shortError(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	const maxLen = 80
	if r := []rune(s); len(r) > maxLen {
		return string(r[:maxLen-1]) + "…"
	}
	return s
}

// policiesText is the policies line of schedule show: the missed and
// overlap policies, and the optional ones that are set.
func policiesText(s *schedule.Schedule) string {
	out := fmt.Sprintf("missed %s, overlap %s", s.Missed, s.Overlap)
	if s.CatchupWindow != 0 {
		out += fmt.Sprintf(", catch-up window %s", s.CatchupWindow)
	}
	if s.Jitter != 0 {
		out += fmt.Sprintf(", jitter up to %s", s.Jitter)
	}
	if s.PauseAfterFailures != 0 {
		out += fmt.Sprintf(", pause after %d failed jobs", s.PauseAfterFailures)
	}
	return out
}
