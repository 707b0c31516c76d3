package memorystore

import (
	"fmt"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// A session's Meta strings (scope, subject, recorded user agent and
// address) follow its key in the arena, as its "meta tail", so that the
// entry stays free of pointers and as small as it was with a scope alone:
// it keeps only the tail's length. The tail is
//
//	scope length (1 byte), scope,
//	subject length (2 bytes, big-endian), subject,
//	user agent length (1 byte), user agent,
//	address length (1 byte), address
//
// with the fields left out from the first of the trailing empty ones on:
// a session with none of them has no tail at all, one with only a scope a
// tail of one byte more than the scope. The lengths fit, as Patch and the
// loaders bound the fields (sessionstore.MaxScopeLength and the others).

// metaTail is a session's Meta strings, as the arena's tail holds them.
type metaTail struct {
	scope, subject, userAgent, addr string
}

// empty reports whether the tail holds nothing: no bytes in the arena.
func (m metaTail) empty() bool {
	return m.scope == "" && m.subject == "" && m.userAgent == "" && m.addr == ""
}

// encodedLen is the length of the encoded tail.
func (m metaTail) encodedLen() int {
	switch {
	case m.addr != "":
		return 1 + len(m.scope) + 2 + len(m.subject) + 1 + len(m.userAgent) + 1 + len(m.addr)
	case m.userAgent != "":
		return 1 + len(m.scope) + 2 + len(m.subject) + 1 + len(m.userAgent)
	case m.subject != "":
		return 1 + len(m.scope) + 2 + len(m.subject)
	case m.scope != "":
		return 1 + len(m.scope)
	}
	return 0
}

// encode returns the encoded tail, nil when it is empty.
func (m metaTail) encode() []byte {
	n := m.encodedLen()
	if n == 0 {
		return nil
	}
	b := make([]byte, 0, n)
	b = append(b, byte(len(m.scope)))
	b = append(b, m.scope...)
	if len(b) == n {
		return b
	}
	b = append(b, byte(len(m.subject)>>8), byte(len(m.subject)))
	b = append(b, m.subject...)
	if len(b) == n {
		return b
	}
	b = append(b, byte(len(m.userAgent)))
	b = append(b, m.userAgent...)
	if len(b) == n {
		return b
	}
	b = append(b, byte(len(m.addr)))
	return append(b, m.addr...)
}

// check fails when a field is longer than the tail (and the contract)
// allows.
func (m metaTail) check() error {
	switch {
	case len(m.scope) > sessionstore.MaxScopeLength:
		return fmt.Errorf("scope of %d bytes, the most is %d", len(m.scope), sessionstore.MaxScopeLength)
	case len(m.subject) > sessionstore.MaxSubjectLength:
		return fmt.Errorf("subject of %d bytes, the most is %d", len(m.subject), sessionstore.MaxSubjectLength)
	case len(m.userAgent) > sessionstore.MaxRecordLength:
		return fmt.Errorf("user agent of %d bytes, the most is %d", len(m.userAgent), sessionstore.MaxRecordLength)
	case len(m.addr) > sessionstore.MaxRecordLength:
		return fmt.Errorf("address of %d bytes, the most is %d", len(m.addr), sessionstore.MaxRecordLength)
	}
	return nil
}

// sanitized returns the tail without the fields that are too long, for
// sessions read from a file: a file written by hand, or damaged, loses a
// field rather than the session.
func (m metaTail) sanitized() metaTail {
	if len(m.scope) > sessionstore.MaxScopeLength {
		m.scope = ""
	}
	if len(m.subject) > sessionstore.MaxSubjectLength {
		m.subject = ""
	}
	if len(m.userAgent) > sessionstore.MaxRecordLength {
		m.userAgent = ""
	}
	if len(m.addr) > sessionstore.MaxRecordLength {
		m.addr = ""
	}
	return m
}

// tailFields decodes an encoded tail into its fields, which are slices of
// t (so they cost nothing, from a string as from the arena). A tail cut
// short, which the store never writes, gives empty fields from the cut on.
func tailFields[T string | []byte](t T) (scope, subject, userAgent, addr T) {
	var rest T
	if scope, rest = tailField(t, 1); len(rest) == 0 {
		return
	}
	if subject, rest = tailField(rest, 2); len(rest) == 0 {
		return
	}
	if userAgent, rest = tailField(rest, 1); len(rest) == 0 {
		return
	}
	addr, _ = tailField(rest, 1)
	return
}

// tailField decodes one field whose length takes size bytes at the start
// of t, and returns it and the rest of t.
func tailField[T string | []byte](t T, size int) (field, rest T) {
	if len(t) < size {
		return t[:0], t[:0]
	}
	n := int(t[0])
	if size == 2 {
		n = n<<8 | int(t[1])
	}
	t = t[size:]
	if n > len(t) {
		return t[:0], t[:0]
	}
	return t[:n], t[n:]
}

// tailSubject returns the subject of an encoded tail.
func tailSubject[T string | []byte](t T) T {
	_, subject, _, _ := tailFields(t)
	return subject
}

// decodeTail returns the fields of an encoded tail as strings, sharing t.
func decodeTail(t string) metaTail {
	scope, subject, userAgent, addr := tailFields(t)
	return metaTail{scope: scope, subject: subject, userAgent: userAgent, addr: addr}
}

// setMetaTail sets m's strings from the tail's.
func setMetaTail(m *sessionstore.Meta, t metaTail) {
	m.Scope, m.Subject, m.UserAgent, m.Addr = t.scope, t.subject, t.userAgent, t.addr
}
