package attendance

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// Kinds of Anomaly: event data the settlement handles by its rules, but
// that an operator should look at, since the Django backend does not
// refuse it.
const (
	// AnomalyDeadlineBeforeStart: fail_minutes is negative, so the
	// deadline, start_datetime + fail_minutes, comes before the event
	// starts. The settlement keeps its rule: the event is due at that
	// deadline, before it begins, and is settled then like any other
	// (members without a check-in are marked ABSENT).
	AnomalyDeadlineBeforeStart = "deadline_before_start"
	// AnomalyNoRoster: the event's generation has no current member (no
	// generation_mapping row with is_current whose club_member is not
	// deleted). The event is settled with nothing to write: it is
	// recorded in wasso_settlement with zero rows, and not looked at again
	// unless its deadline changes.
	AnomalyNoRoster = "no_roster"
	// AnomalyUnknownStatus: some members' latest attendance row for the
	// event has a status other than 0 UNCHECKED, 1 PRESENT, 2 LATE and
	// 3 ABSENT. The settlement turns only UNCHECKED rows ABSENT and
	// inserts only for members without a row, so those members are left
	// as they are.
	AnomalyUnknownStatus = "unknown_status"
)

// Anomaly is one unusual thing about a settled event's data.
type Anomaly struct {
	EventID int64 `json:"event_id"`
	// Kind is one of the Anomaly* constants.
	Kind string `json:"kind"`
	// Detail says what was found.
	Detail string `json:"detail"`
}

// anomalies returns what is unusual about a settled event: a deadline
// before its start (negative fail_minutes), no roster, or members whose
// latest row has a status outside 0-3.
func anomalies(eventID int64, roster, failMinutes, oddMembers int, oddStatuses []int) []Anomaly {
	var out []Anomaly
	if failMinutes < 0 {
		out = append(out, Anomaly{EventID: eventID, Kind: AnomalyDeadlineBeforeStart,
			Detail: fmt.Sprintf("fail_minutes is %d: the deadline is %d minutes before the event starts; settled at that deadline", failMinutes, -failMinutes)})
	}
	if roster == 0 {
		out = append(out, Anomaly{EventID: eventID, Kind: AnomalyNoRoster,
			Detail: "the event's generation has no current member: settled with no rows written"})
	}
	if oddMembers > 0 {
		out = append(out, Anomaly{EventID: eventID, Kind: AnomalyUnknownStatus,
			Detail: fmt.Sprintf("the latest row of %d member(s) has an unknown status %v (known: 0-3): left as it is", oddMembers, oddStatuses)})
	}
	return out
}

// ReportAnomalies returns the FollowUpFunc that logs, as warnings, the
// anomalies of the events each settlement settled (SettledEvent.Anomalies),
// so that data the rules handle quietly (a deadline before the start, an
// empty roster, an unknown status) is visible. It runs no query and never
// fails the settlement. A nil logger discards.
func ReportAnomalies(logger *slog.Logger) FollowUpFunc {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, _ pgx.Tx, batch *SettleResult) error {
		for _, ev := range batch.Events {
			for _, a := range ev.Anomalies {
				logger.WarnContext(ctx, "attendance event data is unusual",
					slog.Int64("event_id", a.EventID), slog.String("kind", a.Kind), slog.String("detail", a.Detail))
			}
		}
		return nil
	}
}
