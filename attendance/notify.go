package attendance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// NotifyAbsentKind is the River job kind that tells the members just
// marked absent.
const NotifyAbsentKind = "attendance.notify_absent"

// NotifyMaxAttemptsDefault is how many times a notification is tried.
// With River's default backoff (attempt^4 seconds) the last try comes
// about four and a half hours after the settlement: later than that a
// push about a missed check-in is more confusing than useful.
const NotifyMaxAttemptsDefault = 10

// Notifier delivers absent notices, usually as push notifications. The
// backend implements it on its push provider; LogNotifier and
// WebhookNotifier are shipped.
//
// Notify runs in a River job of its own, after the settlement committed:
// an error (or a panic) fails that job, which River retries with its
// backoff, and never touches the settlement. A notice may be delivered
// more than once (a retry after a delivery whose answer was lost), so
// receivers should recognise AbsentNotice.IdempotencyKey.
type Notifier interface {
	Notify(ctx context.Context, notice AbsentNotice) error
}

// AbsentNotice tells the members of one settlement that they were marked
// absent.
type AbsentNotice struct {
	// IdempotencyKey is the same for every delivery attempt of one
	// settlement's notice, and differs between settlements.
	IdempotencyKey string `json:"idempotency_key"`
	// EventID, EventTitle: the event, as it is when the notice is sent.
	EventID    int64  `json:"event_id"`
	EventTitle string `json:"event_title"`
	// ClubID, ClubName: the event's club.
	ClubID   int64  `json:"club_id"`
	ClubName string `json:"club_name"`
	// GenerationID is the event's generation.
	GenerationID int64 `json:"generation_id"`
	// Deadline is the deadline the event was settled for.
	Deadline time.Time `json:"deadline"`
	// SettledAt is when the settlement ran.
	SettledAt time.Time `json:"settled_at"`
	// Members are the members marked absent, by generation_mapping id.
	Members []AbsentMember `json:"members"`
	// Attempt counts delivery attempts, from 1.
	Attempt int `json:"attempt"`
}

// AbsentMember is one member marked absent.
type AbsentMember struct {
	// MappingID is the generation_mapping id (the attendance row's).
	MappingID int64 `json:"generation_mapping_id"`
	// MemberID is the club_member id.
	MemberID int64 `json:"member_id"`
	// UserID is the backend's user id, which the push provider knows.
	UserID int64 `json:"user_id"`
}

// NotifyAbsentArgs are the arguments of the attendance.notify_absent job.
// They carry ids only; the worker resolves names when it sends, so that a
// settlement's transaction does no more than it must.
type NotifyAbsentArgs struct {
	EventID   int64     `json:"event_id"`
	Deadline  time.Time `json:"deadline"`
	SettledAt time.Time `json:"settled_at"`
	// MappingIDs are the generation_mapping ids marked absent.
	MappingIDs []int64 `json:"mapping_ids"`
	// IdempotencyKey: see AbsentNotice.
	IdempotencyKey string `json:"idempotency_key"`
}

// Kind is the River job kind.
func (NotifyAbsentArgs) Kind() string { return NotifyAbsentKind }

// InsertOpts makes the job unique by args, so that the notice of one
// settlement is never queued twice, and bounds its attempts.
func (NotifyAbsentArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: NotifyMaxAttemptsDefault,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	}
}

// AbsentIdempotencyKey is the idempotency key of the notice of an event's
// settlement: the event, the deadline it was settled for and the instant
// of the settlement (so an event settled again for the same deadline after
// moving away and back gets a new key), all in microseconds since the Unix
// epoch.
func AbsentIdempotencyKey(eventID int64, deadline, settledAt time.Time) string {
	return fmt.Sprintf("wasso-absent-%d-%d-%d", eventID, deadline.UnixMicro(), settledAt.UnixMicro())
}

// NewNotifyAbsentArgs returns the notification job args of a settled
// event, or false when nobody was marked absent.
func NewNotifyAbsentArgs(ev SettledEvent, settledAt time.Time) (NotifyAbsentArgs, bool) {
	if len(ev.AbsentMappingIDs) == 0 {
		return NotifyAbsentArgs{}, false
	}
	return NotifyAbsentArgs{
		EventID:        ev.EventID,
		Deadline:       ev.Deadline.UTC(),
		SettledAt:      settledAt.UTC(),
		MappingIDs:     ev.AbsentMappingIDs,
		IdempotencyKey: AbsentIdempotencyKey(ev.EventID, ev.Deadline, settledAt),
	}, true
}

// EnqueueAbsentNotices inserts, in tx, one attendance.notify_absent job per
// event of batch that marked someone absent. Called in the settlement's
// transaction, the notices commit with the settlement or not at all.
func EnqueueAbsentNotices(ctx context.Context, tx pgx.Tx, inserter Inserter, batch *SettleResult) error {
	var params []river.InsertManyParams
	for _, ev := range batch.Events {
		if args, ok := NewNotifyAbsentArgs(ev, batch.Now); ok {
			params = append(params, river.InsertManyParams{Args: args})
		}
	}
	if len(params) == 0 {
		return nil
	}
	if _, err := inserter.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("insert %d %s jobs: %w", len(params), NotifyAbsentKind, err)
	}
	return nil
}

// NotifyFollowUp returns the FollowUpFunc that enqueues the absent notices
// of each settlement in its transaction. With a nil inserter it uses the
// River client working the current job (river.ClientFromContext), which is
// what the sweep and settle_event workers run in; outside a job it then
// fails, rolling the settlement back, rather than settle silently without
// notices.
func NotifyFollowUp(inserter Inserter) FollowUpFunc {
	return func(ctx context.Context, tx pgx.Tx, batch *SettleResult) error {
		ins := inserter
		if ins == nil {
			client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
			if err != nil {
				return fmt.Errorf("enqueue absent notices: no inserter and no River client in context: %w", err)
			}
			ins = client
		}
		return EnqueueAbsentNotices(ctx, tx, ins, batch)
	}
}

// ChainFollowUps returns a FollowUpFunc running each non-nil f in order in
// the same transaction, stopping at the first error; nil when none is set.
func ChainFollowUps(fs ...FollowUpFunc) FollowUpFunc {
	var set []FollowUpFunc
	for _, f := range fs {
		if f != nil {
			set = append(set, f)
		}
	}
	switch len(set) {
	case 0:
		return nil
	case 1:
		return set[0]
	}
	return func(ctx context.Context, tx pgx.Tx, batch *SettleResult) error {
		for _, f := range set {
			if err := f(ctx, tx, batch); err != nil {
				return err
			}
		}
		return nil
	}
}

// NotifyAbsentConfig configures a NotifyAbsentWorker.
type NotifyAbsentConfig struct {
	// Logger receives one line per delivery and per failed attempt. Nil
	// discards logs.
	Logger *slog.Logger
	// Notifier delivers the notices. Nil means a LogNotifier on Logger.
	Notifier Notifier
	// Timeout bounds one delivery attempt. Zero keeps River's job timeout.
	Timeout time.Duration
}

// NotifyAbsentWorker works attendance.notify_absent jobs: it resolves the
// club, event and member names and hands the notice to the Notifier.
type NotifyAbsentWorker struct {
	river.WorkerDefaults[NotifyAbsentArgs]

	config NotifyAbsentConfig
	db     DB
}

// NewNotifyAbsentWorker returns a NotifyAbsentWorker reading names from db.
func NewNotifyAbsentWorker(db DB, config NotifyAbsentConfig) (*NotifyAbsentWorker, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: database is nil", ErrInvalidParams)
	}
	if config.Timeout < 0 {
		return nil, fmt.Errorf("%w: notify timeout %s must not be negative", ErrInvalidParams, config.Timeout)
	}
	if config.Logger == nil {
		config.Logger = slog.New(slog.DiscardHandler)
	}
	if config.Notifier == nil {
		config.Notifier = NewLogNotifier(config.Logger)
	}
	return &NotifyAbsentWorker{config: config, db: db}, nil
}

// Timeout is the configured delivery timeout (zero: River's default).
func (w *NotifyAbsentWorker) Timeout(*river.Job[NotifyAbsentArgs]) time.Duration {
	return w.config.Timeout
}

// Work sends the notice. A notifier error fails the attempt, and River
// retries it with its backoff until NotifyMaxAttemptsDefault. A notice
// whose event was deleted since is cancelled: there is nothing left to
// tell the members about. So are args that can never be worked (no event
// id, no members).
func (w *NotifyAbsentWorker) Work(ctx context.Context, job *river.Job[NotifyAbsentArgs]) error {
	if err := job.Args.validate(); err != nil {
		return river.JobCancel(err)
	}
	notice, err := ResolveAbsentNotice(ctx, w.db, job.Args)
	if errors.Is(err, ErrEventNotFound) {
		w.config.Logger.WarnContext(ctx, "absent notice cancelled: event deleted",
			slog.Int64("job_id", job.ID), slog.Int64("event_id", job.Args.EventID))
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	notice.Attempt = job.Attempt
	if len(notice.Members) == 0 {
		w.config.Logger.InfoContext(ctx, "absent notice skipped: no member still absent",
			slog.Int64("job_id", job.ID), slog.Int64("event_id", job.Args.EventID),
			slog.Int("marked_absent", len(job.Args.MappingIDs)))
		return nil
	}
	if err := w.config.Notifier.Notify(ctx, *notice); err != nil {
		w.config.Logger.WarnContext(ctx, "absent notice delivery failed",
			slog.Int64("job_id", job.ID),
			slog.Int64("event_id", notice.EventID),
			slog.String("idempotency_key", notice.IdempotencyKey),
			slog.Int("attempt", job.Attempt),
			slog.Int("max_attempts", job.MaxAttempts),
			slog.String("error", err.Error()),
		)
		return fmt.Errorf("notify absent members of event %d: %w", notice.EventID, err)
	}
	w.config.Logger.InfoContext(ctx, "absent notice delivered",
		slog.Int64("job_id", job.ID),
		slog.Int64("event_id", notice.EventID),
		slog.String("idempotency_key", notice.IdempotencyKey),
		slog.Int("members", len(notice.Members)),
		slog.Int("attempt", job.Attempt),
	)
	return nil
}

// ResolveAbsentNotice builds the notice of args from the database: the
// event's title, its club and the members' ids. It returns an error
// wrapping ErrEventNotFound when the event no longer exists. Members whose
// mapping was deleted since, and members no longer ABSENT (their latest
// row for the event has another status now), are left out.
func ResolveAbsentNotice(ctx context.Context, db DB, args NotifyAbsentArgs) (*AbsentNotice, error) {
	n := &AbsentNotice{
		IdempotencyKey: args.IdempotencyKey,
		EventID:        args.EventID,
		Deadline:       args.Deadline,
		SettledAt:      args.SettledAt,
		Members:        []AbsentMember{},
	}
	err := db.QueryRow(ctx, noticeEventSQL, args.EventID).Scan(&n.EventTitle, &n.GenerationID, &n.ClubID, &n.ClubName)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("resolve absent notice: event %d: %w", args.EventID, ErrEventNotFound)
	}
	if err != nil {
		return nil, translate(fmt.Sprintf("resolve absent notice of event %d", args.EventID), err)
	}
	rows, err := db.Query(ctx, noticeMembersSQL, args.MappingIDs, args.EventID)
	if err != nil {
		return nil, translate(fmt.Sprintf("resolve absent members of event %d", args.EventID), err)
	}
	n.Members, err = pgx.CollectRows(rows, pgx.RowToStructByPos[AbsentMember])
	if err != nil {
		return nil, translate(fmt.Sprintf("resolve absent members of event %d", args.EventID), err)
	}
	return n, nil
}

// noticeEventSQL and noticeMembersSQL go through primary keys only.
const (
	noticeEventSQL = `
SELECT e.title, g.id, c.id, c.name
FROM events e
JOIN club_generation g ON g.id = e.generation_id
JOIN club_club c ON c.id = g.club_id
WHERE e.id = $1`
	// noticeMembersSQL keeps only the members still ABSENT for the event
	// ($2) when the notice is sent: one whose check-in was repaired by
	// Reconcile, or whom an organiser marked present meanwhile, is not told
	// they were absent. The latest row goes through
	// attendances_generation_mapping_id_idx.
	noticeMembersSQL = `
SELECT gm.id, gm.member_id, m.user_id
FROM generation_mapping gm
JOIN club_member m ON m.id = gm.member_id
WHERE gm.id = ANY($1::bigint[])
  AND (SELECT a.status FROM attendances a
       WHERE a.generation_mapping_id = gm.id AND a.event_id = $2
       ORDER BY a.created_at DESC, a.id DESC
       LIMIT 1) = 3
ORDER BY gm.id`
)

// LogNotifier "delivers" notices as one log line each. It is the default,
// for deployments without a push provider yet, and for demos.
type LogNotifier struct {
	logger *slog.Logger
}

// NewLogNotifier returns a LogNotifier logging to logger (nil discards).
func NewLogNotifier(logger *slog.Logger) *LogNotifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &LogNotifier{logger: logger}
}

// Notify logs the notice.
func (n *LogNotifier) Notify(ctx context.Context, notice AbsentNotice) error {
	userIDs := make([]int64, len(notice.Members))
	for i, m := range notice.Members {
		userIDs[i] = m.UserID
	}
	n.logger.InfoContext(ctx, "members marked absent",
		slog.Int64("event_id", notice.EventID),
		slog.String("event_title", notice.EventTitle),
		slog.String("club_name", notice.ClubName),
		slog.Any("user_ids", userIDs),
		slog.String("idempotency_key", notice.IdempotencyKey),
	)
	return nil
}

// Compile-time checks.
var (
	_ Notifier = (*LogNotifier)(nil)
	_ Inserter = (*river.Client[pgx.Tx])(nil)
)
