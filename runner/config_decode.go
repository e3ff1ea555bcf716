package runner

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
)

// How Config's tags become keys, defaults and values: see Config.

// configKey is one key of Config, found by walking its fields.
type configKey struct {
	name  string
	field reflect.StructField
	index []int // of the field in Config
}

func (k configKey) tag(name string) string { return k.field.Tag.Get(name) }

// configKeys are Config's keys, in declaration order (the example file's).
var configKeys = func() []configKey {
	var keys []configKey
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if name == "" || name == "-" {
				continue
			}
			idx := append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+name+".", idx)
				continue
			}
			keys = append(keys, configKey{name: prefix + name, field: f, index: idx})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return keys
}()

// defaultConfig is the configuration of no flags, environment or file:
// the defaults the flags' help shows.
var defaultConfig = func() *Config {
	l := newLoader(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	cfg, err := l.decode()
	if err != nil {
		panic(fmt.Sprintf("config defaults: %v", err)) // the tags are constants: TestConfigDefaults
	}
	return cfg
}()

// ShutdownTimeoutDefault is the default of run.shutdown_timeout: how long
// running jobs get to finish after SIGTERM before they are cancelled (and
// retried by River). A service manager must wait longer.
var ShutdownTimeoutDefault = defaultConfig.Run.ShutdownTimeout

// riverField splits the first path of a river tag into the field's dotted
// name and whether the key sets its negation.
func riverField(tag string) (name string, negate bool) {
	first, _, _ := strings.Cut(tag, ",")
	return strings.TrimPrefix(first, "!"), strings.HasPrefix(first, "!")
}

func fieldIndex(t reflect.Type, dotted string) []int {
	var index []int
	for name := range strings.SplitSeq(dotted, ".") {
		f, ok := t.FieldByName(name)
		if !ok {
			panic(fmt.Sprintf("config: %s has no field %s", t, dotted))
		}
		index, t = append(index, f.Index...), f.Type
	}
	return index
}

// decode decodes each key into its field with viper and the decode hooks,
// one key at a time so that an error names the key and its source.
func (l *loader) decode() (*Config, error) {
	cfg := &Config{File: l.path, sources: map[string]string{}}
	v := reflect.ValueOf(cfg).Elem()
	decoder := func(c *mapstructure.DecoderConfig) {
		c.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			trimHook, durationHook, intHook, locationHook, pairsHook,
			// Before the basic types: a time.Duration is an int64.
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToBasicTypeHookFunc(),
		)
		// No guessing: a number is not a string, nor 1 a boolean.
		c.WeaklyTypedInput = false
	}
	for _, k := range configKeys {
		cfg.sources[k.name] = l.source(k.name)
		field := v.FieldByIndex(k.index)
		if err := l.v.UnmarshalKey(k.name, field.Addr().Interface(), decoder); err != nil {
			return nil, &ConfigError{Key: k.name, Source: cfg.sources[k.name], Err: decodeError(k, l.v.Get(k.name), err)}
		}
		if err := checkValue(k, field); err != nil {
			return nil, &ConfigError{Key: k.name, Source: cfg.sources[k.name], Err: err}
		}
	}
	return cfg, nil
}

// hookError is a decode hook's own message, shown as it is.
type hookError struct{ msg string }

func (e *hookError) Error() string { return e.msg }

func hookErrorf(format string, args ...any) error {
	return &hookError{msg: fmt.Sprintf(format, args...)}
}

// trimHook trims strings that become something else than a string: " 4"
// in the environment is 4.
func trimHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() == reflect.String && to.Kind() != reflect.String {
		return strings.TrimSpace(data.(string)), nil
	}
	return data, nil
}

// durationHook refuses a number where a duration is wanted, rather than
// read it as nanoseconds (the classic viper surprise); 0 is zero.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() || from == to {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64:
		if fmt.Sprint(data) != "0" {
			return nil, hookErrorf("%v has no unit (write e.g. %vs or %vm)", data, data, data)
		}
		return time.Duration(0), nil
	case reflect.String:
		if data == "0" {
			return time.Duration(0), nil
		}
	}
	return data, nil
}

// intHook refuses a decimal number where an integer is wanted, rather
// than truncate it.
func intHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() == reflect.Float64 && to.Kind() == reflect.Int && to != reflect.TypeFor[time.Duration]() {
		if f := data.(float64); f != float64(int64(f)) {
			return nil, hookErrorf("%v is a decimal number, want an integer", f)
		}
	}
	return data, nil
}

// locationHook reads an IANA time zone name. The empty name and "Local"
// are refused: zones are always explicit.
func locationHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeFor[*time.Location]() {
		return data, nil
	}
	name := data.(string)
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" || name == "Local" {
		return nil, hookErrorf("%q is not a time zone (use an IANA name such as Asia/Seoul or UTC)", name)
	}
	return loc, nil
}

// pairsHook reads the string form of a mapping, in a flag or the
// environment: "default=4,notify=2". A queue named without "=N" gets
// run.concurrency workers, written as 0 here.
func pairsHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Map {
		return data, nil
	}
	out := map[string]any{}
	for part := range strings.SplitSeq(data.(string), ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case name == "" && !ok:
			continue
		case !ok && to.Elem().Kind() == reflect.Int:
			out[name] = 0
		case !ok:
			return nil, hookErrorf("%q is not name=value", strings.TrimSpace(part))
		default:
			out[name] = value
		}
	}
	return out, nil
}

// decodeError says what the key wants, without the value of a secret.
func decodeError(k configKey, value any, err error) error {
	if hookErr, ok := errors.AsType[*hookError](err); ok {
		return hookErr
	}
	want := map[reflect.Type]string{
		reflect.TypeFor[int]():               "an integer",
		reflect.TypeFor[bool]():              "a boolean (use true or false)",
		reflect.TypeFor[string]():            "a string (quote it)",
		reflect.TypeFor[time.Duration]():     "a duration (write it with a unit, e.g. 30s, 5m, 1h)",
		reflect.TypeFor[map[string]int]():    "a mapping of names to numbers",
		reflect.TypeFor[map[string]string](): "a mapping of names to strings",
	}[k.field.Type]
	switch s, isString := value.(string); {
	case k.tag("secret") != "":
		return fmt.Errorf("must be %s", want)
	case isString:
		return fmt.Errorf("%q is not %s", s, want)
	default:
		return fmt.Errorf("%v is a %s, want %s", value, typeName(value), want)
	}
}

// checkValue applies a key's check tag.
func checkValue(k configKey, v reflect.Value) error {
	check := k.tag("check")
	switch {
	case check == "":
		return nil
	case check == "positive":
		if d := time.Duration(v.Int()); d <= 0 {
			return fmt.Errorf("%s: must be positive", d)
		}
		return nil
	case strings.Contains(check, "|"):
		allowed := strings.Split(check, "|")
		if s := strings.ToLower(v.String()); !slices.Contains(allowed, s) {
			return fmt.Errorf("%q: must be %s or %s", v.String(), strings.Join(allowed[:len(allowed)-1], ", "), allowed[len(allowed)-1])
		}
		v.SetString(strings.ToLower(v.String()))
		return nil
	}
	lo, hi, _ := strings.Cut(check, "..")
	parse := func(s string) int64 {
		if d, err := time.ParseDuration(s); err == nil && v.Type() == reflect.TypeFor[time.Duration]() {
			return int64(d)
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		return n
	}
	n := v.Int()
	shown := fmt.Sprint(v.Interface())
	switch {
	case lo != "" && hi != "" && (n < parse(lo) || n > parse(hi)):
		return fmt.Errorf("%s: must be between %s and %s", shown, lo, hi)
	case lo == "0s" && n < 0:
		return fmt.Errorf("%s: must be zero (the default) or positive", shown)
	case lo != "" && hi == "" && n < parse(lo):
		return fmt.Errorf("%s: must be at least %s", shown, lo)
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case int, int64:
		return "number"
	case float64:
		return "decimal number"
	case bool:
		return "boolean"
	case string:
		return "string"
	case map[string]any:
		return "mapping"
	case []any:
		return "list"
	default:
		return fmt.Sprintf("%T", v)
	}
}
