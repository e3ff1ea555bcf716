package attendance

import (
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// SchemaMissingError is returned (wrapped, with what was being done) when a
// query needs a table or function that does not exist: the database is not
// a Wasso database, or the scheduler's migrations are not applied. It names
// what is missing, so that a caller can tell the two apart (one of the
// Django backend's tables, or one of the scheduler's) and say what to do in
// its own terms: this package does not know whether it runs under
// wasso-runner, a test or another program, so its message says what is
// wrong and never which command fixes it.
//
// errors.Is(err, ErrSchemaMissing) is true for it, and errors.As reaches
// the *pgconn.PgError that reported it.
type SchemaMissingError struct {
	// Kind is what is missing: "relation" (a table or a view) or
	// "function".
	Kind string
	// Name is the missing table's or function's name as the query wrote
	// it, schema-qualified when the query qualified it: "events",
	// "wasso_settlement", "wasso_deadline".
	Name string
	// Err is the database error that reported it, a *pgconn.PgError.
	Err error
}

// Error says what is missing in Postgres's words, which for a function
// include the argument types it was called with.
func (e *SchemaMissingError) Error() string {
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) && pgErr.Message != "" {
		return ErrSchemaMissing.Error() + ": " + pgErr.Message
	}
	return ErrSchemaMissing.Error() + ": " + e.Kind + " " + strconv.Quote(e.Name) + " does not exist"
}

// Is makes errors.Is(err, ErrSchemaMissing) true.
func (e *SchemaMissingError) Is(target error) bool { return target == ErrSchemaMissing }

// Unwrap returns the database error.
func (e *SchemaMissingError) Unwrap() error { return e.Err }

// SchemaMissingFrom translates a database error that reports a missing
// relation (SQLSTATE 42P01, undefined_table) or function (42883,
// undefined_function) into a *SchemaMissingError, and reports false for
// any other error. The storage code of this module (this package's and
// wassoriver's) shares it so that a missing schema reads the same
// wherever it is met.
//
// An undefined_function error that does not name a function (a missing
// operator: a query's mistake, not the schema's) is not translated.
func SchemaMissingFrom(err error) (*SchemaMissingError, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil, false
	}
	switch pgErr.Code {
	case pgerrcode.UndefinedTable: // relation "events" does not exist
		// Name stays empty should a message not quote it: the error is
		// still a missing table.
		name, _ := quotedName(pgErr.Message)
		return &SchemaMissingError{Kind: "relation", Name: name, Err: pgErr}, true
	case pgerrcode.UndefinedFunction: // function wasso_deadline(...) does not exist
		if rest, ok := strings.CutPrefix(pgErr.Message, "function "); ok {
			if name, _, ok := strings.Cut(rest, "("); ok && name != "" {
				return &SchemaMissingError{Kind: "function", Name: name, Err: pgErr}, true
			}
		}
	}
	return nil, false
}

// quotedName returns the name between the first and the last double quote
// of msg, as Postgres writes a relation's name in its messages.
func quotedName(msg string) (string, bool) {
	first, last := strings.IndexByte(msg, '"'), strings.LastIndexByte(msg, '"')
	if first < 0 || last <= first+1 {
		return "", false
	}
	return msg[first+1 : last], true
}
