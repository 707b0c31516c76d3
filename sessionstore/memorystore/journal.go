package memorystore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// The journal makes a persist file lose at most about a second of changes
// to a crash, where the snapshot alone loses everything since the last
// save. Every change to a session is appended to <file>.journal under the
// lock of the session's shard, so the journal holds each key's changes in
// order; it is written to the OS and fsync'd every journalFlushEvery. On
// start the store loads the snapshot, then replays <file>.journal.old (a
// journal rotated by a save that did not finish) and <file>.journal.
//
// Each record holds a key's whole new state (or its deletion), never a
// change relative to the one before, so replaying a record already in the
// snapshot is harmless: a save rotates the journal before it scans the
// shards, and removes the rotated one only once the snapshot is in place.
// Grace records are not journaled, as they are not saved: they last
// seconds, for requests in flight, and a crash ends those.

const (
	journalSuffix    = ".journal"
	oldJournalSuffix = ".journal.old"

	// journalFlushEvery is how often the journal is written out and
	// fsync'd: what a crash may lose, and half the second promised.
	journalFlushEvery = 500 * time.Millisecond
)

// journalRecord is one line of a journal.
type journalRecord struct {
	Op        string `json:"o"` // put, del, renew or seen
	Key       string `json:"k"`
	Data      string `json:"d,omitempty"`
	Expires   int64  `json:"e,omitempty"` // unix nanoseconds; 0 when permanent
	Renewed   int64  `json:"r,omitempty"`
	Created   int64  `json:"c,omitempty"`
	OwnExpiry int64  `json:"x,omitempty"`
	Scope     string `json:"s,omitempty"`
	Seen      bool   `json:"n,omitempty"` // off probation
	// The fields below came with the subject index; a journal written
	// before them still reads, without them.
	Subject   string               `json:"u,omitempty"`
	Persist   sessionstore.Persist `json:"p,omitempty"`
	UserAgent string               `json:"a,omitempty"`
	Addr      string               `json:"i,omitempty"`
}

const (
	opPut   = "put"
	opDel   = "del"
	opRenew = "renew"
	opSeen  = "seen"
)

// journal appends records to a file.
type journal struct {
	path string

	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	dirty  bool
	failed bool // a write failed: records are dropped until a rotation
	closed bool
	logger *zap.Logger
}

// openJournal opens path for appending, creating it (mode 0600), or
// emptying it when truncate.
func openJournal(path string, truncate bool, logger *zap.Logger) (*journal, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if truncate {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	return &journal{path: path, f: f, w: bufio.NewWriterSize(f, 1<<16), logger: logger}, nil
}

// append writes a record to the buffer. Callers hold the shard lock of the
// record's key, which orders the records of a key.
func (j *journal) append(rec *journalRecord) {
	b, err := json.Marshal(rec)
	if err != nil {
		return // strings and numbers only: cannot fail
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.failed {
		return
	}
	b = append(b, '\n')
	if _, err := j.w.Write(b); err != nil {
		j.fail(err)
		return
	}
	j.dirty = true
}

// fail stops the journal after a write error, until the next save rotates
// it: the next snapshot holds what it missed. j.mu is held.
func (j *journal) fail(err error) {
	j.failed = true
	j.logger.Error("memory session store: writing its journal failed; changes until the next save may be lost to a crash",
		zap.String("file", j.path), zap.Error(err))
}

// flush writes the buffer to the OS, then fsyncs the file outside the lock,
// so that requests appending meanwhile do not wait for the disk.
func (j *journal) flush() {
	j.mu.Lock()
	if !j.dirty || j.closed || j.failed {
		j.mu.Unlock()
		return
	}
	j.dirty = false
	f := j.f
	if err := j.w.Flush(); err != nil {
		j.fail(err)
		j.mu.Unlock()
		return
	}
	j.mu.Unlock()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		j.logger.Warn("memory session store: fsync of its journal failed", zap.String("file", j.path), zap.Error(err))
	}
}

// rotate moves the journal to <file>.journal.old and starts an empty one,
// unless a rotated journal is still there (a save that failed): then the
// journal goes on, holding all since that rotation. It reports whether it
// rotated.
func (j *journal) rotate(oldPath string) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return false, nil
	}
	if _, err := os.Lstat(oldPath); err == nil {
		return false, nil
	}
	if err := j.w.Flush(); err != nil && !j.failed {
		return false, err
	}
	if err := os.Rename(j.path, oldPath); err != nil {
		return false, err
	}
	j.f.Close()
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		// Appends are dropped until the next save: the journal is lost,
		// the snapshot is not.
		j.failed = true
		return true, err
	}
	j.f, j.failed, j.dirty = f, false, false
	j.w.Reset(f)
	return true, nil
}

// close flushes, fsyncs and closes the journal; later appends are dropped.
func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return
	}
	j.closed = true
	if !j.failed {
		_ = j.w.Flush()
	}
	_ = j.f.Sync()
	j.f.Close()
}

// The store's records. Each is appended under the shard lock of its key.

func (s *memStore) journalPut(sh *memShard, i uint32) {
	j := s.jnl.Load()
	if j == nil {
		return
	}
	e := &sh.slots[i]
	t := decodeTail(string(sh.tail(i)))
	rec := journalRecord{Op: opPut, Key: string(sh.key(i)), Data: sh.data(i), Renewed: e.renewed,
		Created: e.created, OwnExpiry: e.ownExpiry, Seen: e.isSeen(), Persist: e.persist,
		Scope: t.scope, Subject: t.subject, UserAgent: t.userAgent, Addr: t.addr}
	if e.expires != math.MaxInt64 {
		rec.Expires = e.expires
	}
	j.append(&rec)
}

func (s *memStore) journalKey(op, key string) {
	if j := s.jnl.Load(); j != nil {
		j.append(&journalRecord{Op: op, Key: key})
	}
}

func (s *memStore) journalRenew(key string, e *memEntry) {
	if j := s.jnl.Load(); j != nil {
		rec := journalRecord{Op: opRenew, Key: key, Renewed: e.renewed}
		if e.expires != math.MaxInt64 {
			rec.Expires = e.expires
		}
		j.append(&rec)
	}
}

// flushJournal writes the journal out; the persist loop calls it.
func (s *memStore) flushJournal() {
	if j := s.jnl.Load(); j != nil {
		j.flush()
	}
}

// closeJournal closes the store's journal, if any.
func (s *memStore) closeJournal() {
	if j := s.jnl.Swap(nil); j != nil {
		j.close()
	}
}

// readJournal reads a journal's records, in order. A last record cut short
// (no newline: a crash mid-write) is left out and reported as torn, with
// the offset where it starts. Any other flaw stops the reading with an
// error, after the records before it.
func readJournal(path string) (recs []journalRecord, good int64, torn bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, false, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return recs, good, len(line) > 0, nil
		}
		if err != nil {
			return recs, good, false, err
		}
		var rec journalRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return recs, good, false, fmt.Errorf("record %d: %w", n, err)
		}
		switch {
		case rec.Key == "":
			err = errors.New("no key")
		case rec.Op == opPut && !mergepatch.IsCompactASCIIObject(rec.Data):
			err = errors.New("data that is not a JSON object")
		case rec.Op != opPut && rec.Op != opDel && rec.Op != opRenew && rec.Op != opSeen:
			err = fmt.Errorf("unknown operation %q", rec.Op)
		}
		if err != nil {
			return recs, good, false, fmt.Errorf("record %d: %w", n, err)
		}
		recs = append(recs, rec)
		good += int64(len(line))
	}
}

// replayJournal applies the journal at path to the store, which has no
// journal open yet. A torn last record is skipped, counted and logged, and
// cut off the file so that appends follow a whole record; a corrupt record
// elsewhere stops the replay there, and the file is moved aside. It
// reports how many records it applied.
func (s *memStore) replayJournal(path string) int {
	logger := s.logger.Load()
	recs, good, torn, err := readJournal(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	for i := range recs {
		s.applyRecord(&recs[i])
	}
	if torn {
		logger.Warn("memory session store: the last record of its journal was cut short, as by a crash mid-write; skipped",
			zap.String("file", path), zap.Int("torn_records", 1), zap.Int("records_applied", len(recs)))
		if terr := os.Truncate(path, good); terr != nil {
			logger.Error("memory session store: cannot cut the torn record off its journal", zap.String("file", path), zap.Error(terr))
		}
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			logger.Error("memory session store: cannot read its journal, nor move it aside; replayed the records before the flaw",
				zap.String("file", path), zap.Int("records_applied", len(recs)), zap.Error(err), zap.NamedError("rename_error", rerr))
		} else {
			logger.Error("memory session store: cannot read its journal; replayed the records before the flaw and moved it aside",
				zap.String("file", path), zap.String("moved_to", aside), zap.Int("records_applied", len(recs)), zap.Error(err))
		}
	}
	return len(recs)
}

// applyRecord applies one journal record. Each sets a key's state, so
// applying one the snapshot already holds changes nothing.
func (s *memStore) applyRecord(rec *journalRecord) {
	switch rec.Op {
	case opDel:
		_ = s.Delete(context.Background(), rec.Key)
	case opPut:
		if rec.Expires != 0 && rec.Expires <= s.now() {
			_ = s.Delete(context.Background(), rec.Key)
			return
		}
		e := memEntry{expires: rec.Expires, renewed: rec.Renewed, created: rec.Created, ownExpiry: rec.OwnExpiry, persist: rec.Persist}
		if e.persist > sessionstore.PersistOff {
			e.persist = sessionstore.PersistDefault
		}
		if e.expires == 0 {
			e.expires = math.MaxInt64
		}
		if rec.Seen {
			e.seen = 1
		} else {
			e.probSeq = s.nextProbSeq()
		}
		tail := metaTail{scope: rec.Scope, subject: rec.Subject, userAgent: rec.UserAgent, addr: rec.Addr}
		if err := s.put(rec.Key, tail.sanitized(), rec.Data, e); err != nil {
			s.logger.Load().Error("memory session store: a session from its journal does not fit; dropped", zap.Error(err))
		}
	case opRenew, opSeen:
		h := s.hash(rec.Key)
		sh := s.shardOf(h)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		i, ok := sh.find(h, rec.Key)
		if !ok || sh.slots[i].moved {
			return
		}
		e := &sh.slots[i]
		if rec.Op == opSeen {
			e.seen = 1
			return
		}
		e.renewed, e.expires = rec.Renewed, rec.Expires
		if e.expires == 0 {
			e.expires = math.MaxInt64
		}
		sh.fix(e.pos)
	}
	s.version.Add(1)
}
