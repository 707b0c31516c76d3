// Package caddyopt reads the options of a Caddyfile directive or block for
// every module of caddy-session, with the same checks and the same error
// wording everywhere: an option given twice, one that needs a value, an
// argument too many, a value outside its set, an unknown option. Each error
// names the option (after the module's scope, such as "store redis"), and
// the dispenser adds the file and line.
package caddyopt

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Reader reads one module's options from a dispenser.
type Reader struct {
	d *caddyfile.Dispenser
	// scope begins every error, e.g. "store redis"; empty for none.
	scope string
	// known are the option names, so that an option's optional value on
	// the directive's line can be told from the next option.
	known []string
	seen  map[string]bool
	// option is the one being read.
	option string
}

// NewReader returns a reader of the options named known, whose errors
// begin with scope (when not empty).
func NewReader(d *caddyfile.Dispenser, scope string, known ...string) *Reader {
	return &Reader{d: d, scope: scope, known: known, seen: map[string]bool{}}
}

// Start begins the option at the dispenser's cursor and returns its name.
// An option given twice, or one not known, is an error.
func (r *Reader) Start() (string, error) {
	r.option = r.d.Val()
	if !slices.Contains(r.known, r.option) {
		return r.option, r.errf("unknown option %q", r.option)
	}
	if r.seen[r.option] {
		return r.option, r.errf("option %s given twice", r.option)
	}
	r.seen[r.option] = true
	return r.option, nil
}

// Value reads the option's one value.
func (r *Reader) Value() (string, error) {
	if !r.d.NextArg() {
		return "", r.errf("%s needs a value", r.option)
	}
	return r.d.Val(), nil
}

// Values reads the rest of the option's line: at least one value.
func (r *Reader) Values() ([]string, error) {
	vals := r.d.RemainingArgs()
	if len(vals) == 0 {
		return nil, r.errf("%s needs a value", r.option)
	}
	return vals, nil
}

// OneOf reads a value that must be one of allowed, compared in any case,
// and returns it lowercased.
func (r *Reader) OneOf(allowed ...string) (string, error) {
	v, err := r.Value()
	if err != nil {
		return "", err
	}
	if !slices.Contains(allowed, strings.ToLower(v)) {
		return "", r.Errf("must be %s, got %q", list(allowed), v)
	}
	return strings.ToLower(v), nil
}

// OptionalOneOf reads a value that, when present, must be one of allowed
// (in any case), and returns it lowercased; without one it returns def.
// On the directive's line (lineForm), a token that is another known
// option is left for the next Start.
func (r *Reader) OptionalOneOf(lineForm bool, def string, allowed ...string) (string, error) {
	if !r.d.NextArg() {
		return def, nil
	}
	v := r.d.Val()
	if slices.Contains(allowed, strings.ToLower(v)) {
		return strings.ToLower(v), nil
	}
	if lineForm && slices.Contains(r.known, v) {
		r.d.Prev()
		return def, nil
	}
	return "", r.Errf("must be %s, got %q", list(allowed), v)
}

// Flag reads a flag: alone it means true, or it takes true or false.
func (r *Reader) Flag(lineForm bool) (bool, error) {
	v, err := r.OptionalOneOf(lineForm, "true", "true", "false")
	return v == "true", err
}

// PositiveInt reads a whole number of at least 1.
func (r *Reader) PositiveInt() (int, error) {
	v, err := r.Value()
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, r.Errf("must be a positive integer, got %q", v)
	}
	return n, nil
}

// Duration reads a Caddy duration (such as 500ms, 1h or 30d) of at least
// least.
func (r *Reader) Duration(least time.Duration) (time.Duration, error) {
	v, err := r.Value()
	if err != nil {
		return 0, err
	}
	d, err := caddy.ParseDuration(v)
	if err != nil || d < least {
		return 0, r.Errf("must be a duration of at least %s, such as 30s, 5m or 1h; got %q", least, v)
	}
	return d, nil
}

// End refuses an argument left on the option's line.
func (r *Reader) End() error {
	if r.d.NextArg() {
		return r.Errf("unexpected argument %q", r.d.Val())
	}
	return nil
}

// Errf returns an error about the option being read, at its line:
// "<scope>: <option>: <message>".
func (r *Reader) Errf(format string, args ...any) error {
	return r.errf("%s: %s", r.option, fmt.Sprintf(format, args...))
}

// Wrap returns err as an error about the option being read, at its line.
// err's text should name the option already (as the checks shared with
// the JSON config's validation do).
func (r *Reader) Wrap(err error) error {
	if r.scope != "" {
		err = fmt.Errorf("%s: %w", r.scope, err)
	}
	return r.d.WrapErr(err)
}

func (r *Reader) errf(format string, args ...any) error {
	if r.scope != "" {
		format = r.scope + ": " + format
	}
	return r.d.Errf(format, args...)
}

// list writes allowed as "a, b or c".
func list(allowed []string) string {
	if len(allowed) == 1 {
		return allowed[0]
	}
	return strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
}
