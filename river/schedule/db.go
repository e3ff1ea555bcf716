package schedule

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/wasso/scheduler/internal/dberr"
)

// DB runs statements: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts a transaction: a *pgxpool.Pool or a *pgx.Conn, or a
// pgx.Tx, whose Begin starts a savepoint (pgx.BeginFunc's contract).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Inserter enqueues jobs in the caller's transaction and reads jobs back:
// a *river.Client[pgx.Tx] is one. The scheduler reads the last jobs of
// the schedules of a batch with one JobListTx (and a schedule's alone with
// JobGetTx) to apply their overlap policy, and cancels one with
// JobCancelTx under OverlapCancelOther; Describe and PauseAfterFailures
// list a schedule's jobs with JobListTx, by the metadata they carry.
type Inserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobCancelTx(ctx context.Context, tx pgx.Tx, jobID int64) (*rivertype.JobRow, error)
	JobGetTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error)
	JobListTx(ctx context.Context, tx pgx.Tx, params *river.JobListParams) (*river.JobListResult, error)
}

var _ Inserter = (*river.Client[pgx.Tx])(nil)

// ErrInvalidConfig is returned, wrapped with the setting named, when a
// StoreConfig, HandlerOpts or NewScheduler argument is out of range.
var ErrInvalidConfig = errors.New("invalid config")

// ErrSchemaMissing is returned, as a *SchemaMissingError naming the
// table, when the scheduler's tables do not exist: its migrations are not
// applied.
var ErrSchemaMissing = dberr.ErrSchemaMissing

// SchemaMissingError names the table or function a statement needed and
// did not find; errors.Is(err, ErrSchemaMissing) is true for it.
type SchemaMissingError = dberr.SchemaMissingError

// scheduleErr wraps err with what was being done, and maps a missing table
// (the scheduler's migrations are not applied) to a *SchemaMissingError
// naming it: the program that called says what to run about it.
func scheduleErr(doing string, err error) error {
	if missing, ok := dberr.SchemaMissingFrom(err); ok {
		return fmt.Errorf("%s: %w", doing, missing)
	}
	return fmt.Errorf("%s: %w", doing, err)
}
