package mergepatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// The oracle is the first implementation of the JSON work, built on
// encoding/json: slow, but its meaning is encoding/json's, which is what
// the differential tests hold the purpose-built parser to.

func oracleValidatePatch(patch string) error {
	if t := strings.TrimLeft(patch, " \t\r\n"); t != "" && t[0] == '{' && json.Valid([]byte(patch)) {
		return nil
	}
	_, err := oracleDecodeObject(patch)
	return err
}

func oracleApplyPatches(data string, patches []string) (string, error) {
	target := map[string]any{}
	if data != "" {
		var err error
		if target, err = oracleDecodeObject(data); err != nil {
			return "", fmt.Errorf("stored session data: %w", err)
		}
	}
	for i, p := range patches {
		patch, err := oracleDecodeObject(p)
		if err != nil {
			return "", fmt.Errorf("patch %d: %w", i+1, err)
		}
		target = oracleMergeObject(target, patch)
	}
	return oracleEncodeCanonical(target)
}

func oracleCanonicalize(data string) (string, error) {
	obj, err := oracleDecodeObject(data)
	if err != nil {
		return "", err
	}
	return oracleEncodeCanonical(obj)
}

func oracleNormalize(data string) (string, error) {
	if IsCompactASCIIObject(data) {
		return data, nil
	}
	return oracleCanonicalize(data)
}

func oracleMergeObject(target, patch map[string]any) map[string]any {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(target, k)
		case map[string]any:
			sub, ok := target[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
			}
			target[k] = oracleMergeObject(sub, pv)
		default:
			target[k] = v
		}
	}
	return target
}

func oracleDecodeObject(s string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w at byte %d", errInvalidJSON, dec.InputOffset())
	}
	if strings.TrimLeft(s[dec.InputOffset():], " \t\r\n") != "" {
		return nil, fmt.Errorf("%w: data after the value", errInvalidJSON)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errNotObject
	}
	return obj, nil
}

func oracleEncodeCanonical(obj map[string]any) (string, error) {
	if len(obj) == 0 {
		return EmptyData, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return "", fmt.Errorf("encoding session data: %w", err)
	}
	return oracleASCIIJSON(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})), nil
}

func oracleASCIIJSON(b []byte) string {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	sb.Write(b[:i])
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf && c != 0x7f {
			sb.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			oracleWriteU(&sb, r1)
			oracleWriteU(&sb, r2)
			continue
		}
		oracleWriteU(&sb, r)
	}
	return sb.String()
}

func oracleWriteU(sb *strings.Builder, r rune) {
	sb.WriteString(`\u`)
	h := strconv.FormatInt(int64(r), 16)
	for n := len(h); n < 4; n++ {
		sb.WriteByte('0')
	}
	sb.WriteString(h)
}

func TestOracleEncodeCanonicalEmpty(t *testing.T) {
	got, err := oracleEncodeCanonical(map[string]any{})
	if err != nil || got != EmptyData {
		t.Errorf("encodeCanonical(empty) = %q, %v; want %q", got, err, EmptyData)
	}
	got, err = oracleEncodeCanonical(nil)
	if err != nil || got != "{}" {
		t.Errorf("encodeCanonical(nil) = %q, %v; want {}", got, err)
	}
}

func TestOracleASCIIJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, ``},
		{`{"a":1}`, `{"a":1}`},
		{"\x7f", `\u007f`},
		{"a\x7f", `a\u007f`},
		{"é", `\u00e9`},
		{"xé😀y", `x\u00e9\ud83d\ude00y`},
		{"\uffff", `\uffff`},
		{"\U00010000", `\ud800\udc00`},
	}
	for _, tt := range tests {
		if got := oracleASCIIJSON([]byte(tt.in)); got != tt.want {
			t.Errorf("asciiJSON(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
