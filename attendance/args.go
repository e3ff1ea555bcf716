package attendance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/riverqueue/river"
)

// Job args that do not fit their kind.
//
// River decodes a job's args with encoding/json before the worker runs,
// and by default fails the attempt when they do not decode and retries the
// job, up to its max_attempts (25 unless set), although no retry can
// decode them better. A job inserted by hand or by a buggy client with
// args of the wrong shape would so come back for days. The args types of
// this package decode through decodeArgs instead, which returns the
// decoding error inside river.JobCancel: River cancels the job at its
// first attempt (state cancelled, finalized, the error in river_job.errors
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

// decodeArgs decodes data, a kind's encoded args, into v, a pointer to a
// type without an UnmarshalJSON method (the args type converted to a local
// type, to avoid recursing). An error is a *ArgsError inside
// river.JobCancel.
func decodeArgs(kind string, data []byte, v any) error {
	err := errNotObject
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		err = json.Unmarshal(data, v)
	}
	if err == nil {
		return nil
	}
	return river.JobCancel(&ArgsError{Kind: kind, Args: quoteArgs(data), Err: err})
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

// UnmarshalJSON decodes the args of an attendance.sweep job; see
// ArgsError.
func (a *SweepArgs) UnmarshalJSON(data []byte) error {
	type sweepArgs SweepArgs
	return decodeArgs(SweepKind, data, (*sweepArgs)(a))
}

// UnmarshalJSON decodes the args of an attendance.settle_event job; see
// ArgsError.
func (a *SettleEventArgs) UnmarshalJSON(data []byte) error {
	type settleEventArgs SettleEventArgs
	return decodeArgs(SettleEventKind, data, (*settleEventArgs)(a))
}

// UnmarshalJSON decodes the args of an attendance.notify_absent job; see
// ArgsError.
func (a *NotifyAbsentArgs) UnmarshalJSON(data []byte) error {
	type notifyAbsentArgs NotifyAbsentArgs
	return decodeArgs(NotifyAbsentKind, data, (*notifyAbsentArgs)(a))
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
