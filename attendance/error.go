package attendance

import "errors"

// ErrInvalidParams is returned (wrapped, with the field named) when
// settlement params or job args are out of range.
var ErrInvalidParams = errors.New("invalid settlement params")

// ErrSchemaMissing is returned, as a *SchemaMissingError naming the
// relation or function, when one the settlement needs does not exist: the
// database is not a Wasso database, or the scheduler's migrations are not
// applied.
var ErrSchemaMissing = errors.New("scheduler schema missing")

// ErrEventNotFound is returned (wrapped, with the event id) when an event
// the caller named does not exist: ScheduleEventTx was given a wrong id or
// the event was deleted.
var ErrEventNotFound = errors.New("event not found")
