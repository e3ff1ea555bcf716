package runner_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/wassotest"
)

// TestScheduleShowAndPauseNote: schedule disable --note records who (the
// OS user, or --by), why and when, list shows it short and show in full;
// enable clears it. show prints the next slots with their UTC offsets, a
// daylight saving time change marked, and the runs with their state;
// --json gives the same.
func TestScheduleShowAndPauseNote(t *testing.T) {
	t.Parallel()
	db := newDB(t, wassotest.Options{})
	carol := cliOpts{env: []string{"USER=carol"}}
	// Monthly on the 1st at 10:00 in Berlin: ten months always hold a
	// change of offset, in March or in October.
	schedCLI(t, db, cliOpts{}, "add", "monthly", "--kind", attendance.SweepKind, "--cron", "0 10 1 * *", "--tz", "Europe/Berlin",
		"--description", "monthly catch-up")
	res := schedCLI(t, db, cliOpts{}, "run-now", "monthly", "--json")
	var ran struct {
		JobID int64 `json:"job_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &ran), res.stdout)

	// Disable with a note: the OS user is who.
	before := time.Now()
	res = schedCLI(t, db, carol, "disable", "monthly", "--note", "club closed until April", "--json")
	var disabled struct {
		Enabled bool `json:"enabled"`
		Paused  struct {
			By   string    `json:"by"`
			Note string    `json:"note"`
			At   time.Time `json:"at"`
		} `json:"paused"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &disabled), res.stdout)
	require.False(t, disabled.Enabled)
	require.Equal(t, "carol", disabled.Paused.By)
	require.Equal(t, "club closed until April", disabled.Paused.Note)
	require.WithinRange(t, disabled.Paused.At, before.Add(-time.Second), time.Now().Add(time.Second))

	res = schedCLI(t, db, cliOpts{}, "list")
	require.Regexp(t, `(?m)^NAME\s.*\sNOTE$`, res.stdout)
	require.Regexp(t, `(?m)^monthly\s.*\scarol: club closed until April$`, res.stdout)

	// show: the fields, the note, the slots and the run.
	res = schedCLI(t, db, cliOpts{}, "show", "monthly")
	out := res.stdout
	require.Regexp(t, `(?m)^state\s+disabled$`, out)
	require.Regexp(t, `(?m)^paused\s+\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? CES?T by carol$`, out)
	require.Regexp(t, `(?m)^note\s+club closed until April$`, out)
	require.Regexp(t, `(?m)^description\s+monthly catch-up$`, out)
	require.Regexp(t, `(?m)^counters\s+1 runs, 0 skipped, 0 missed$`, out)
	require.Contains(t, out, "next slots (disabled: the slots it would run if enabled now):")
	slotRE := regexp.MustCompile(`(?m)^(\d+)\s+(\d{4}-\d\d-\d\d 10:00:00 (CET|CEST))\s+([+-]\d\d:\d\d)\s+(\S+Z)\s+(-|DST change)$`)
	slots := slotRE.FindAllStringSubmatch(out, -1)
	require.Len(t, slots, 10, out)
	changes := 0
	for i, sl := range slots {
		require.Equal(t, fmt.Sprint(i+1), sl[1])
		require.Equal(t, map[string]string{"CET": "+01:00", "CEST": "+02:00"}[sl[3]], sl[4], "offset of %s", sl[2])
		changed := i > 0 && sl[4] != slots[i-1][4]
		if changed {
			changes++
		}
		if i > 0 {
			require.Equal(t, changed, sl[6] == "DST change", "slot %d marked only when its offset differs from the one before: %s", i+1, sl[0])
		}
	}
	require.GreaterOrEqual(t, changes, 1, "ten months cross a change of offset:\n%s", out)
	require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T\s+available\s+0/25\s+-\s+-$`, ran.JobID), out, "the run, not worked here")

	// --json: the schedule's fields, the slots with their offsets, the runs.
	res = schedCLI(t, db, cliOpts{}, "show", "monthly", "--json")
	var d struct {
		Name      string `json:"name"`
		NextSlots []struct {
			At            time.Time `json:"at"`
			Local         string    `json:"local"`
			Offset        string    `json:"offset"`
			OffsetChanged bool      `json:"offset_changed"`
		} `json:"next_slots"`
		Runs []struct {
			JobID int64  `json:"job_id"`
			State string `json:"state"`
		} `json:"runs"`
		Paused struct {
			By string `json:"by"`
		} `json:"paused"`
		TotalRunCount int `json:"total_run_count"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &d), res.stdout)
	require.Equal(t, "monthly", d.Name)
	require.Len(t, d.NextSlots, 10)
	for i, sl := range d.NextSlots {
		require.True(t, strings.HasSuffix(sl.Local, sl.Offset), sl.Local)
		require.Equal(t, slots[i][4], sl.Offset)
	}
	require.Len(t, d.Runs, 1)
	require.Equal(t, ran.JobID, d.Runs[0].JobID)
	require.Equal(t, "available", d.Runs[0].State)
	require.Equal(t, "carol", d.Paused.By)
	require.Equal(t, 1, d.TotalRunCount)

	// --by names someone else; a plain disable of a disabled schedule
	// keeps the note; enable clears it.
	schedCLI(t, db, carol, "disable", "monthly", "--by", "dave", "--note", "still closed")
	schedCLI(t, db, carol, "disable", "monthly")
	require.Regexp(t, `(?m)^monthly\s.*\sdave: still closed$`, schedCLI(t, db, cliOpts{}, "list").stdout)
	res = schedCLI(t, db, cliOpts{}, "enable", "monthly")
	require.Contains(t, res.stdout, "enabled schedule monthly")
	require.Regexp(t, `(?m)^monthly\s.*\s-$`, schedCLI(t, db, cliOpts{}, "list").stdout)
	out = schedCLI(t, db, cliOpts{}, "show", "monthly").stdout
	require.NotContains(t, out, "still closed")
	require.Contains(t, out, "next slots:")
	// A plain disable records who.
	schedCLI(t, db, carol, "disable", "monthly")
	require.Regexp(t, `(?m)^monthly\s.*\sby carol$`, schedCLI(t, db, cliOpts{}, "list").stdout)
}
