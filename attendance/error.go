package attendance

import (
	"errors"

	"github.com/wasso/scheduler/internal/dberr"
)

// ErrInvalidParams is returned (wrapped, with the field named) when
// settlement params or job args are out of range.
var ErrInvalidParams = errors.New("invalid settlement params")

// ErrSchemaMissing is returned, as a *SchemaMissingError naming the
// relation or function, when one the settlement needs does not exist: the
// database is not a Wasso database, or the scheduler's migrations are not
// applied.
var ErrSchemaMissing = dberr.ErrSchemaMissing

// SchemaMissingError names the relation or function that a query needed and
// did not find. errors.Is(err, ErrSchemaMissing) is true for it, and
// errors.As reaches the *pgconn.PgError that reported it. Its message says
// what is wrong and never which command fixes it: the program that called
// says that in its own terms.
type SchemaMissingError = dberr.SchemaMissingError

// SchemaMissingFrom translates a database error that reports a missing
// relation (undefined_table) or function (undefined_function) into a
// *SchemaMissingError, and reports false for any other error.
func SchemaMissingFrom(err error) (*SchemaMissingError, bool) { return dberr.SchemaMissingFrom(err) }

// ErrEventNotFound is returned (wrapped, with the event id) when an event
// the caller named does not exist: ScheduleEventTx was given a wrong id or
// the event was deleted.
var ErrEventNotFound = errors.New("event not found")
