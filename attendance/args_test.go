package attendance_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// TestArgsThatDoNotFitTheKind: args that do not decode into their kind's
// type give an *attendance.ArgsError that names the kind and the field
// (the workers' middleware hands it to River inside river.JobCancel, so
// that River cancels the job instead of retrying it: the runner's bad-input
// test checks that end to end); fields a type does not know are ignored.
func TestArgsThatDoNotFitTheKind(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name  string
		kind  string
		check func(kind string, data []byte) error
		args  string
		want  string // "" when the args decode
	}{
		{"SweepWrongType", attendance.SweepKind, attendance.CheckArgs[attendance.SweepArgs], `{"lookback": "soon"}`,
			`attendance.sweep job args {"lookback": "soon"} do not fit the kind: field "lookback" is a JSON string, want an integer (nanoseconds)`},
		{"SweepString", attendance.SweepKind, attendance.CheckArgs[attendance.SweepArgs], `"a string"`, `attendance.sweep job args "a string" do not fit the kind: args must be a JSON object`},
		{"SweepArray", attendance.SweepKind, attendance.CheckArgs[attendance.SweepArgs], `[1]`, `args must be a JSON object`},
		{"SweepNull", attendance.SweepKind, attendance.CheckArgs[attendance.SweepArgs], `null`, `args must be a JSON object`},
		{"SweepUnknownField", attendance.SweepKind, attendance.CheckArgs[attendance.SweepArgs], `{"event_ids": "x"}`, ""},
		{"SettleEventWrongType", attendance.SettleEventKind, attendance.CheckArgs[attendance.SettleEventArgs], `{"event_id": "7"}`, `field "event_id" is a JSON string, want an integer`},
		{"SettleEventBadTime", attendance.SettleEventKind, attendance.CheckArgs[attendance.SettleEventArgs], `{"event_id": 7, "deadline": "tomorrow"}`, `attendance.settle_event job args`},
		{"NotifyWrongType", attendance.NotifyAbsentKind, attendance.CheckArgs[attendance.NotifyAbsentArgs], `{"event_id": 1, "mapping_ids": [1, "2"]}`, `field "mapping_ids`},
		{"NotifyValid", attendance.NotifyAbsentKind, attendance.CheckArgs[attendance.NotifyAbsentArgs], `{"event_id": 1, "mapping_ids": [1, 2]}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.check(tc.kind, []byte(tc.args))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			var argsErr *attendance.ArgsError
			require.ErrorAs(t, err, &argsErr)
			require.ErrorIs(t, err, attendance.ErrInvalidParams)
			require.ErrorContains(t, err, tc.want)
		})
	}

	// Args that decode still round-trip through encoding/json as before.
	args := attendance.NewSettleEventArgs(7, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	b, err := json.Marshal(args)
	require.NoError(t, err)
	var back attendance.SettleEventArgs
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, args, back)

	// Long args are quoted shortened.
	long := `{"lookback": "` + strings.Repeat("x", 500) + `"}`
	err = attendance.CheckArgs[attendance.SweepArgs](attendance.SweepKind, []byte(long))
	var argsErr *attendance.ArgsError
	require.True(t, errors.As(err, &argsErr))
	require.Less(t, len(argsErr.Args), 210)
}

// TestAnomalies: the settlement handles a negative fail_minutes (settled
// at start + fail_minutes, before the start), a generation without
// members (settled with no rows) and an unknown status (that member left
// alone) by its rules, reports each in SettledEvent.Anomalies, and
// ReportAnomalies logs one warning for each.
func TestAnomalies(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	db := wassotest.NewDB(t, wassotest.Options{})
	backwards, err := seed.CreateClub(ctx, db.Pool, "Backwards", 2, testNow.Add(-48*time.Hour))
	require.NoError(t, err)
	negative, err := seed.CreateEvent(ctx, db.Pool, seed.Event{GenerationID: backwards.GenerationID, Title: "Backwards",
		Start: testNow.Add(20 * time.Minute), FailMinutes: -30}, testNow.Add(-24*time.Hour))
	require.NoError(t, err)
	empty, err := seed.CreateClub(ctx, db.Pool, "Empty", 0, testNow.Add(-48*time.Hour))
	require.NoError(t, err)
	noRoster := dueEvent(t, db.Pool, empty.GenerationID, time.Minute)
	odd, err := seed.CreateClub(ctx, db.Pool, "Odd", 2, testNow.Add(-48*time.Hour))
	require.NoError(t, err)
	unknown := dueEvent(t, db.Pool, odd.GenerationID, time.Minute)
	_, err = seed.AddAttendance(ctx, db.Pool, unknown, odd.MappingIDs[0], 7, testNow.Add(-time.Hour))
	require.NoError(t, err)
	plain, err := seed.CreateClub(ctx, db.Pool, "Plain", 1, testNow.Add(-48*time.Hour))
	require.NoError(t, err)
	dueEvent(t, db.Pool, plain.GenerationID, time.Minute)

	logs := &wassotest.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	res, err := attendance.SettleDueFunc(ctx, db.Pool, attendance.SettleParams{Now: testNow}, attendance.ReportAnomalies(logger))
	require.NoError(t, err)
	require.Equal(t, 4, res.ProcessedEvents, "none of them stops the settlement")
	require.Equal(t, []int{3}, statusesOf(t, db.Pool, negative, backwards.MappingIDs[0]), "settled before the event starts")
	require.Equal(t, []int{7}, statusesOf(t, db.Pool, unknown, odd.MappingIDs[0]))
	require.Equal(t, []int{3}, statusesOf(t, db.Pool, unknown, odd.MappingIDs[1]))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM attendances WHERE event_id = $1`, noRoster))

	kinds := map[int64]string{}
	for _, ev := range res.Events {
		for _, a := range ev.Anomalies {
			kinds[a.EventID] = a.Kind
		}
	}
	require.Equal(t, map[int64]string{
		negative: attendance.AnomalyDeadlineBeforeStart,
		noRoster: attendance.AnomalyNoRoster,
		unknown:  attendance.AnomalyUnknownStatus,
	}, kinds)
	for _, kind := range kinds {
		require.Contains(t, logs.String(), `"msg":"attendance event data is unusual","event_id":`)
		require.Contains(t, logs.String(), `"kind":"`+kind+`"`)
	}
	require.Contains(t, logs.String(), "unknown status [7]")
}
