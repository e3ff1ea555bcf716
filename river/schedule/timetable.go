package schedule

import (
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// NextSlot returns the schedule's first slot after the instant after,
// ignoring ExpiresAt, or the zero time if its cron expression never fires
// again. A schedule without a time zone is evaluated in UTC.
func (s *Schedule) NextSlot(after time.Time) (time.Time, error) {
	tz := s.TimeZone
	if tz == "" {
		tz = TimeZoneDefault
	}
	tt, err := compileTimetable(s.Every, s.Cron, tz, truncMicro(s.StartAt))
	if err != nil {
		return time.Time{}, err
	}
	return tt.next(after), nil
}

// timetable computes the slots of a schedule.
type timetable struct {
	every time.Duration      // interval schedules
	spec  *cron.SpecSchedule // cron schedules, Location set
	loc   *time.Location
	start time.Time // zero: none
	// everyHour is true when the cron expression's hour field matches
	// every hour, so that the repeated hour of a fall-back day keeps its
	// slots (see cronNext).
	everyHour bool
}

func compileTimetable(every time.Duration, expr, timeZone string, start time.Time) (*timetable, error) {
	if timeZone == "" || timeZone == "Local" {
		return nil, fieldError("time_zone", "%q: name an IANA time zone such as UTC or Asia/Seoul", timeZone)
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return nil, &FieldError{Field: "time_zone", Err: err}
	}
	tt := &timetable{loc: loc, start: start}
	switch {
	case every != 0 && expr != "":
		return nil, fieldError("every", "a schedule has either every or cron, not both")
	case every == 0 && expr == "":
		return nil, fieldError("every", "a schedule needs every or cron")
	case every != 0:
		if every < EveryMin || every > EveryMax {
			return nil, fieldError("every", "%s must be between %s and %s", every, EveryMin, EveryMax)
		}
		if every%time.Microsecond != 0 {
			return nil, fieldError("every", "%s must be a whole number of microseconds", every)
		}
		tt.every = every
	default:
		spec, err := parseCron(expr)
		if err != nil {
			return nil, err
		}
		copied := *spec
		copied.Location = loc
		tt.spec = &copied
		// SpecSchedule keeps each field as a set of bits, bit n for the
		// value n.
		const allHours = 1<<24 - 1
		tt.everyHour = spec.Hour&allHours == allHours
	}
	return tt, nil
}

// parseCron accepts what cron.ParseStandard does except what has a field
// of its own here: "@every" (use Every) and a TZ= or CRON_TZ= prefix (use
// TimeZone).
func parseCron(expr string) (*cron.SpecSchedule, error) {
	trimmed := strings.TrimSpace(expr)
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return nil, fieldError("cron", "%q: set time_zone instead of a TZ= prefix", expr)
	}
	if strings.HasPrefix(trimmed, "@every") {
		return nil, fieldError("cron", "%q: use every for intervals", expr)
	}
	if !strings.HasPrefix(trimmed, "@") && len(strings.Fields(trimmed)) != 5 {
		return nil, fieldError("cron", "%q must have 5 fields (minute hour day-of-month month day-of-week)", expr)
	}
	sched, err := cron.ParseStandard(trimmed)
	if err != nil {
		return nil, &FieldError{Field: "cron", Err: err}
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, fieldError("cron", "%q is not a cron expression", expr)
	}
	return spec, nil
}

// next returns the first slot strictly after the instant after, or the
// zero time if there is none (a cron expression that never fires within
// five years, such as February 30th).
func (tt *timetable) next(after time.Time) time.Time {
	if !tt.start.IsZero() && after.Before(tt.start) {
		if tt.spec == nil {
			return tt.start
		}
		after = tt.start.Add(-time.Nanosecond)
	}
	if tt.spec == nil {
		anchor := tt.start
		if anchor.IsZero() {
			anchor = time.Unix(0, 0).UTC()
		}
		k := after.Sub(anchor)/tt.every + 1
		if after.Before(anchor) {
			// Integer division rounds toward zero: step back one more
			// for instants before the anchor (only without StartAt, and
			// only before 1970).
			k = -((anchor.Sub(after) - 1) / tt.every)
		}
		return anchor.Add(k * tt.every).UTC()
	}
	return tt.cronNext(after)
}

// atOrAfter returns the first slot at or after t.
func (tt *timetable) atOrAfter(t time.Time) time.Time {
	return tt.next(t.Add(-time.Nanosecond))
}

// cronNext is robfig/cron's Next with two daylight saving time rules of
// cron (Vixie cron, cronie) that robfig/cron does not follow:
//
//   - A local time that does not exist, being in the gap of a
//     spring-forward transition (02:30 on the day New York moves from
//     02:00 EST to 03:00 EDT), fires once at the first instant after the
//     gap (03:00 EDT). robfig/cron skips the day.
//   - A local time that occurs twice, in the repeated hour of a
//     fall-back transition (01:30 on the day New York moves from 02:00
//     EDT back to 01:00 EST), fires once, at its first occurrence
//     (01:30 EDT). robfig/cron fires at both. An expression whose hour
//     field matches every hour ("0 * * * *", "*/15 * * * *") keeps
//     firing through the repeated hour, as elapsed time passes.
//
// Zones without daylight saving time (UTC, Asia/Seoul since 1988) are
// unaffected: their slots are robfig/cron's.
func (tt *timetable) cronNext(after time.Time) time.Time {
	cur := after
	// A repeated hour holds at most 60 whole minutes; the bound only
	// guards against a zone database gone wrong.
	for range 10_000 {
		n := tt.spec.Next(cur)
		if gap := tt.gapSlot(cur, n); !gap.IsZero() {
			return gap.UTC()
		}
		if n.IsZero() || tt.everyHour || !tt.repeated(n) {
			return n.UTC()
		}
		cur = n
	}
	return time.Time{}
}

// gapSlot returns the end of the first spring-forward gap in (from, to]
// holding a local time the expression matches, or the zero time.
func (tt *timetable) gapSlot(from, to time.Time) time.Time {
	if to.IsZero() {
		return time.Time{}
	}
	t := from
	for {
		_, end := t.In(tt.loc).ZoneBounds()
		if end.IsZero() || end.After(to) {
			return time.Time{}
		}
		_, before := end.Add(-time.Nanosecond).In(tt.loc).Zone()
		_, after := end.In(tt.loc).Zone()
		if gap := after - before; gap > 0 {
			// The local times [wall, wall+gap) of the old offset were
			// skipped.
			wall := end.In(time.FixedZone("", before))
			for m := 0; m < gap/60; m++ {
				if tt.matchesWall(wall.Add(time.Duration(m) * time.Minute)) {
					return end
				}
			}
		}
		t = end
	}
}

// repeated says whether t's local time occurred earlier the same day, an
// offset before: t is in the second pass of a fall-back hour.
func (tt *timetable) repeated(t time.Time) bool {
	local := t.In(tt.loc)
	start, _ := local.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, now := local.Zone()
	_, prev := start.Add(-time.Nanosecond).In(tt.loc).Zone()
	back := time.Duration(prev-now) * time.Second
	return back > 0 && t.Sub(start) < back
}

// matchesWall says whether the expression matches the wall-clock time w
// (its fields read as they are, whatever its zone): the first slot after
// the second before w, in w's own zone, is w.
func (tt *timetable) matchesWall(w time.Time) bool {
	inZone := *tt.spec
	inZone.Location = w.Location()
	return inZone.Next(w.Add(-time.Second)).Equal(w)
}

// shortestGap is the shortest time between two of the next n slots from
// now (the interval itself for an interval schedule), zero when fewer
// than two slots are left.
func (tt *timetable) shortestGap(n int) time.Duration {
	if tt.spec == nil {
		return tt.every
	}
	var shortest time.Duration
	prev := tt.next(time.Now())
	for range n {
		if prev.IsZero() {
			break
		}
		next := tt.next(prev)
		if next.IsZero() {
			break
		}
		if gap := next.Sub(prev); shortest == 0 || gap < shortest {
			shortest = gap
		}
		prev = next
	}
	return shortest
}
