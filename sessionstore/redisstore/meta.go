package redisstore

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// metaFields are the fields of a session's metadata hash that make its
// Meta, in the order every read of them asks for them (the load script's
// HMGET, the cached HMGET, Inspect's, a subject listing's), so one
// parseMeta reads them all. The hash also holds seen and indexed, which
// only the subject index reads (see the layout comment in store.go).
var metaFields = [nMeta]string{"created", "expiry", "scope", "subject", "persist", "ua", "addr"}

// The positions of the fields in metaFields.
const (
	fCreated = iota
	fExpiry
	fScope
	fSubject
	fPersist
	fUA
	fAddr
	nMeta
)

// The persist field's values; absent is sessionstore.PersistDefault.
const (
	persistOn  = "on"
	persistOff = "off"
)

func persistField(p sessionstore.Persist) string {
	switch p {
	case sessionstore.PersistOn:
		return persistOn
	case sessionstore.PersistOff:
		return persistOff
	}
	return ""
}

// parseMeta reads the metadata hash's fields, in metaFields' order; what
// is missing or unreadable stays zero.
func parseMeta(f *[nMeta]string) sessionstore.Meta {
	m := sessionstore.Meta{Scope: f[fScope], Subject: f[fSubject], UserAgent: f[fUA], Addr: f[fAddr]}
	// An absent field is skipped, not parsed: ParseInt's error allocates.
	if f[fCreated] != "" {
		if ms, err := strconv.ParseInt(f[fCreated], 10, 64); err == nil && ms > 0 {
			m.Created = time.UnixMilli(ms)
		}
	}
	if f[fExpiry] != "" {
		if ms, err := strconv.ParseInt(f[fExpiry], 10, 64); err == nil {
			if ms < 0 {
				m.Expiry = sessionstore.Permanent
			} else {
				m.Expiry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	switch f[fPersist] {
	case persistOn:
		m.Persist = sessionstore.PersistOn
	case persistOff:
		m.Persist = sessionstore.PersistOff
	}
	return m
}

// checkMeta refuses metadata over its bounds, before anything is written:
// Redis would keep whatever it is given, and a subject's index is named
// after it.
func checkMeta(opts *sessionstore.PatchOptions) error {
	if len(opts.Scope) > sessionstore.MaxScopeLength {
		return fmt.Errorf("redis: saving session: scope of %d bytes, the limit is %d", len(opts.Scope), sessionstore.MaxScopeLength)
	}
	if opts.Subject != nil {
		subj := *opts.Subject
		if len(subj) > sessionstore.MaxSubjectLength {
			return fmt.Errorf("redis: saving session: subject of %d bytes, the limit is %d", len(subj), sessionstore.MaxSubjectLength)
		}
		for i := range len(subj) {
			if subj[i] < 0x20 || subj[i] > 0x7e {
				return fmt.Errorf("redis: saving session: the subject is not printable ASCII (byte %d)", i)
			}
		}
	}
	if len(opts.UserAgent) > sessionstore.MaxRecordLength || len(opts.Addr) > sessionstore.MaxRecordLength {
		return fmt.Errorf("redis: saving session: a recorded user agent or address over %d bytes", sessionstore.MaxRecordLength)
	}
	if opts.Persist > sessionstore.PersistOff {
		return fmt.Errorf("redis: saving session: unknown persist value %d", opts.Persist)
	}
	return nil
}

// The serialized form of a cached reply, as rueidis's CacheMarshal writes
// it: the client-side expiry (7 bytes, least significant first), then the
// message: a type byte and a big-endian 8-byte length (of a string's
// bytes, an array's elements; a null's is meaningless), then a string's
// bytes or an array's elements in turn. viewArrayStrings reads an array of
// strings and nulls from it without building RedisMessages (which would
// allocate the array), for the cached read of a session's metadata.
const (
	respArray  = '*'
	respBlob   = '$'
	respSimple = '+'
	respNull   = '_'
)

// viewArrayStrings fills out with the strings of the array in msg (a
// cached reply as above), "" for a null, viewing msg's bytes, and returns
// its client-side expiry (unix ms). ok is false if msg is not an array of
// len(out) strings and nulls: the caller then reads it another way.
func viewArrayStrings(msg []byte, out []string) (pxat int64, ok bool) {
	if len(msg) < 7+9 {
		return 0, false
	}
	for i := range 7 {
		pxat |= int64(msg[i]) << (8 * i)
	}
	c := 7
	if msg[c] != respArray || binary.BigEndian.Uint64(msg[c+1:c+9]) != uint64(len(out)) {
		return 0, false
	}
	c += 9
	for i := range out {
		if len(msg) < c+9 {
			return 0, false
		}
		typ, size := msg[c], binary.BigEndian.Uint64(msg[c+1:c+9])
		c += 9
		switch typ {
		case respNull:
			out[i] = ""
		case respBlob, respSimple:
			if uint64(len(msg)-c) < size {
				return 0, false
			}
			out[i] = viewString(msg[c : c+int(size)])
			c += int(size)
		default:
			return 0, false
		}
	}
	return pxat, true
}
