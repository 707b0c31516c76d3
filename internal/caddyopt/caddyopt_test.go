package caddyopt

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// read parses a `mod { ... }` block with every reader method by option
// name, and returns what it read or the first error.
func read(input string) (map[string]any, error) {
	d := caddyfile.NewTestDispenser(input)
	d.Next()
	r := NewReader(d, "store x", "v", "vs", "one", "flag", "int", "dur", "opt")
	got := map[string]any{}
	for d.NextBlock(0) {
		opt, err := r.Start()
		if err != nil {
			return got, err
		}
		var v any
		switch opt {
		case "v":
			v, err = r.Value()
		case "vs":
			v, err = r.Values()
		case "one":
			v, err = r.OneOf("a", "b", "c")
		case "flag":
			v, err = r.Flag(false)
		case "int":
			v, err = r.PositiveInt()
		case "dur":
			v, err = r.Duration(time.Second)
		case "opt":
			v, err = r.OptionalOneOf(false, "def", "x", "y")
		}
		if err != nil {
			return got, err
		}
		if err := r.End(); err != nil {
			return got, err
		}
		got[opt] = v
	}
	return got, nil
}

func TestReader(t *testing.T) {
	tests := []struct {
		name, input string
		want        string // fmt of what was read; "" when an error is wanted
		err         string // all of it must be in the error, with "Testfile:<line>"
	}{
		{"values", "x {\n v a\n vs b c\n one B\n flag\n int 3\n dur 2s\n opt\n}", "map[dur:2s flag:true int:3 one:b opt:def v:a vs:[b c]]", ""},
		{"flag false", "x {\n flag false\n}", "map[flag:false]", ""},
		{"unknown", "x {\n bogus 1\n}", "", `store x: unknown option "bogus", at Testfile:2`},
		{"twice", "x {\n v a\n v b\n}", "", "store x: option v given twice, at Testfile:3"},
		{"needs a value", "x {\n v\n}", "", "store x: v needs a value, at Testfile:2"},
		{"values need one", "x {\n vs\n}", "", "store x: vs needs a value"},
		{"extra", "x {\n v a b\n}", "", `store x: v: unexpected argument "b"`},
		{"one of", "x {\n one d\n}", "", `store x: one: must be a, b or c, got "d"`},
		{"flag value", "x {\n flag maybe\n}", "", `store x: flag: must be true or false, got "maybe"`},
		{"positive", "x {\n int 0\n}", "", `store x: int: must be a positive integer, got "0"`},
		{"duration", "x {\n dur 10ms\n}", "", `store x: dur: must be a duration of at least 1s`},
		{"optional value", "x {\n opt z\n}", "", `store x: opt: must be x or y, got "z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(tt.input)
			if tt.err == "" {
				if err != nil || fmt.Sprint(got) != tt.want {
					t.Errorf("read = %s, %v; want %s", fmt.Sprint(got), err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

// TestFlagOnTheDirectiveLine: on the directive's line a flag's optional
// value may be the next option instead; anything else is an error naming
// the flag.
func TestFlagOnTheDirectiveLine(t *testing.T) {
	for _, tt := range []struct {
		line, err string
		want      bool
	}{
		{"flag", "", true},
		{"flag false", "", false},
		{"flag v x", "", true},
		{"flag maybe", `flag: must be true or false, got "maybe"`, false},
	} {
		d := caddyfile.NewTestDispenser("dir " + tt.line)
		d.Next()
		d.NextArg()
		r := NewReader(d, "", "flag", "v")
		if _, err := r.Start(); err != nil {
			t.Fatal(err)
		}
		on, err := r.Flag(true)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil || on != tt.want {
			t.Errorf("%q: %v, %v; want %v", tt.line, on, err, tt.want)
		}
	}
}
