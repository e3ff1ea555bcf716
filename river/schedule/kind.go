package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"

	"github.com/riverqueue/river"
)

// Kind is a job kind schedules may name, with its args type, so
// that a schedule's args are checked when it is written rather than when
// its first job fails.
type Kind struct {
	kind string
	typ  reflect.Type
	opts river.InsertOpts
}

// NewKind returns the kind of args, a value of a job args type
// (SweepArgs{}). Its InsertOpts, if it has them, give the defaults of
// Queue, Priority and MaxAttempts for schedules of the kind; its unique
// options and hooks do not apply to scheduled jobs, which are unique by
// slot instead.
func NewKind(args river.JobArgs) Kind {
	typ := reflect.TypeOf(args)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	k := Kind{kind: args.Kind(), typ: typ}
	if withOpts, ok := args.(river.JobArgsWithInsertOpts); ok {
		k.opts = withOpts.InsertOpts()
	}
	return k
}

// Kind returns the job kind.
func (k Kind) Kind() string { return k.kind }

// CheckArgs says whether args are a JSON object that decodes into a fresh
// value of the kind's args type with json.Decoder.DisallowUnknownFields:
// a field the type does not know is a typo in a schedule, refused when
// the schedule is written rather than ignored at every run.
func (k Kind) CheckArgs(args json.RawMessage) error {
	if trimmed := bytes.TrimSpace(args); len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("args must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(reflect.New(k.typ).Interface()); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the args object")
	}
	return nil
}

// scheduledArgs are the args of a scheduled job: its kind and its args as
// stored. River encodes args with encoding/json, which calls MarshalJSON.
type scheduledArgs struct {
	kind string
	args json.RawMessage
}

func (a scheduledArgs) Kind() string { return a.kind }

func (a scheduledArgs) MarshalJSON() ([]byte, error) { return a.args, nil }
