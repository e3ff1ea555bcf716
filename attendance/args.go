package attendance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Job args that do not fit their kind.
//
// River decodes a job's args with encoding/json before the worker runs,
// and by default fails the attempt when they do not decode and retries the
// job, up to its max_attempts (25 unless set), although no retry can
// decode them better. A job inserted by hand or by a buggy client with
// args of the wrong shape would so come back for days. The args types of
// this package are checked by a worker middleware (argsCheck) before River
// decodes them, which returns the decoding error inside river.JobCancel:
// River cancels the job at its first attempt (state cancelled, finalized, the error in river_job.errors
// for River UI and wasso-runner jobs list), and nothing else is affected.
// River has no "discard now" result; cancelled is its permanent failure
// state for jobs that must not be retried.
//
// Fields an args type does not know are ignored, as encoding/json does, so
// that a newer backend may add fields to a kind without its jobs being
// cancelled by older runners during a rolling deploy.

// ArgsError is returned, inside river.JobCancel, when a job's args do not
// decode into its kind's args type: they are not a JSON object, or a field
// has the wrong type. errors.Is(err, ErrInvalidParams) is true for it.
type ArgsError struct {
	// Kind is the job kind.
	Kind string
	// Args are the args as stored, shortened to argsQuoteMax bytes. The
	// args of this package's kinds hold ids and instants only.
	Args string
	// Err is the decoding error.
	Err error
}

// argsQuoteMax bounds how much of the args an ArgsError quotes.
const argsQuoteMax = 200

func (e *ArgsError) Error() string {
	return fmt.Sprintf("%s job args %s do not fit the kind: %s", e.Kind, e.Args, describeDecodeError(e.Err))
}

// Unwrap returns the decoding error.
func (e *ArgsError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidParams) true.
func (e *ArgsError) Is(target error) bool { return target == ErrInvalidParams }

// errNotObject is the decoding error of args that are not a JSON object.
var errNotObject = errors.New("args must be a JSON object")

// CheckArgs says whether data, the encoded args of a job of kind, decode
// into T, the kind's args type: nil, or an *ArgsError naming the field.
// Args must be a JSON object; fields T does not know are ignored.
func CheckArgs[T any](kind string, data []byte) error {
	err := errNotObject
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		var v T
		err = json.Unmarshal(data, &v)
	}
	if err == nil {
		return nil
	}
	return &ArgsError{Kind: kind, Args: quoteArgs(data), Err: err}
}

// argsCheck is the worker middleware of this package's kinds. River runs
// it before it decodes the args: args that do not fit T cancel the job
// (river.JobCancel) instead of failing an attempt that every retry would
// fail again.
type argsCheck[T river.JobArgs] struct{ river.MiddlewareDefaults }

func (argsCheck[T]) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if err := CheckArgs[T](job.Kind, job.EncodedArgs); err != nil {
		return river.JobCancel(err)
	}
	return doInner(ctx)
}

// Middleware checks the args of an attendance.sweep job; see ArgsError.
func (w *SweepWorker) Middleware(*rivertype.JobRow) []rivertype.WorkerMiddleware {
	return []rivertype.WorkerMiddleware{&argsCheck[SweepArgs]{}}
}

// Middleware checks the args of an attendance.settle_event job; see
// ArgsError.
func (w *SettleEventWorker) Middleware(*rivertype.JobRow) []rivertype.WorkerMiddleware {
	return []rivertype.WorkerMiddleware{&argsCheck[SettleEventArgs]{}}
}

// Middleware checks the args of an attendance.notify_absent job; see
// ArgsError.
func (w *NotifyAbsentWorker) Middleware(*rivertype.JobRow) []rivertype.WorkerMiddleware {
	return []rivertype.WorkerMiddleware{&argsCheck[NotifyAbsentArgs]{}}
}

func quoteArgs(data []byte) string {
	s := string(bytes.TrimSpace(data))
	if len(s) <= argsQuoteMax {
		return s
	}
	cut := argsQuoteMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// describeDecodeError says which field is wrong when encoding/json says
// so, in words that do not name the Go types used to decode.
func describeDecodeError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("field %q is a JSON %s, want %s", typeErr.Field, typeErr.Value, jsonKindOf(typeErr.Type.String()))
	}
	return err.Error()
}

// jsonKindOf names the JSON an args field of Go type typ takes.
func jsonKindOf(typ string) string {
	switch typ {
	case "int", "int64", "int32":
		return "an integer"
	case "time.Duration":
		return "an integer (nanoseconds)"
	case "time.Time":
		return "an RFC 3339 timestamp string"
	case "string":
		return "a string"
	case "[]int64":
		return "an array of integers"
	default:
		return typ
	}
}

// validate returns an error naming the field when args decoded but can
// never be worked: a notice needs its event and the members to tell.
func (a *NotifyAbsentArgs) validate() error {
	switch {
	case a.EventID <= 0:
		return fmt.Errorf("%w: %s event id %d must be positive", ErrInvalidParams, NotifyAbsentKind, a.EventID)
	case len(a.MappingIDs) == 0:
		return fmt.Errorf("%w: %s has no mapping_ids: there is nobody to notify", ErrInvalidParams, NotifyAbsentKind)
	}
	return nil
}
