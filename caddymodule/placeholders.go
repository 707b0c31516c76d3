package caddymodule

import (
	"encoding/json"
	"strings"
)

// placeholder provides {http.<session_name>.id}, .new, .data and
// .data.<key>. It is a replacer provider rather than values set on every
// request, so a request that uses none of them pays nothing, and the data
// is parsed only when a .data.<key> placeholder is asked for.
func (sw *sessionWriter) placeholder(key string) (any, bool) {
	n := &sw.h.names
	switch key {
	case n.idPlaceholder:
		return sw.sess.id, true
	case n.newPlaceholder:
		return boolString(sw.sess.isNew), true
	case n.dataPlaceholder:
		return sw.sess.data, true
	}
	field, ok := strings.CutPrefix(key, n.dataKeyPrefix)
	if !ok {
		return nil, false
	}
	return sw.dataField(field), true
}

// dataField returns a top-level value of the session data: a string as it
// is, anything else as JSON, and "" when the key is absent.
func (sw *sessionWriter) dataField(field string) string {
	if sw.dataFields == nil {
		// The data is canonical JSON written by the store: it parses.
		if err := json.Unmarshal([]byte(sw.sess.data), &sw.dataFields); err != nil || sw.dataFields == nil {
			sw.dataFields = map[string]json.RawMessage{}
		}
	}
	raw, ok := sw.dataFields[field]
	if !ok {
		return ""
	}
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
