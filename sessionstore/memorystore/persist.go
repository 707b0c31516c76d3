package memorystore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// persistFormat names the memory store's file format in its first line.
const persistFormat = "caddy-session memory store v1"

// persistHeader is the first line of a persist file.
type persistHeader struct {
	Format string    `json:"format"`
	Saved  time.Time `json:"saved"`
}

// persistEntry is one session in a persist file, one per line.
type persistEntry struct {
	Key       string `json:"k"`
	Data      string `json:"d"`
	Expires   int64  `json:"e,omitempty"` // unix nanoseconds; 0 when permanent
	Renewed   int64  `json:"r"`
	Created   int64  `json:"c,omitempty"` // unix nanoseconds; 0 when not recorded
	OwnExpiry int64  `json:"x,omitempty"` // the session's own expiry in nanoseconds; -1 permanent
	Scope     string `json:"s,omitempty"` // the site the session belongs to
	// The fields below came with the subject index, each left out when
	// empty, so that a file written before them still reads, and one
	// written with them reads the same when no session has them.
	Subject   string               `json:"u,omitempty"` // the session's owner
	Persist   sessionstore.Persist `json:"p,omitempty"` // its choice of cookie
	UserAgent string               `json:"a,omitempty"` // its client, as recorded
	Addr      string               `json:"i,omitempty"`
}

// persister saves a memory store to a file every interval, and on Destruct.
type persister struct {
	path     atomic.Pointer[string]
	interval atomic.Int64 // nanoseconds
	saved    atomic.Uint64
	mu       sync.Mutex // one save at a time; guards journalFor
	// journalFor is the persist file whose journal the store writes.
	journalFor string
	// loaded: the store has loaded a persist file. Until then, a file
	// named (by a config provisioned after a bare `store memory` of the
	// same name) is loaded, not written over.
	loaded bool
}

// storePersist sets where and how often the store saves itself.
func (s *memStore) storePersist(path string, interval time.Duration) {
	s.persist.path.Store(&path)
	s.persist.interval.Store(int64(interval))
}

// setPersist sets where and how often the store saves itself; an empty
// path turns saving off. A new file gets a new journal, emptied (what it
// held belongs to another history than this store's), and a snapshot at
// once, which the journal's records follow.
func (s *memStore) setPersist(path string, interval time.Duration) {
	s.storePersist(path, interval)
	s.persist.mu.Lock()
	if s.persist.journalFor == path {
		s.persist.mu.Unlock()
		return
	}
	if path != "" && !s.persist.loaded {
		// The first file this store is given: what it holds is the
		// store's past, to load, not to overwrite.
		s.closeJournal()
		s.persist.mu.Unlock()
		s.loadPersisted(path)
		return
	}
	s.closeJournal()
	s.persist.journalFor = path
	if path != "" {
		_ = os.Remove(path + oldJournalSuffix)
		j, err := openJournal(path+journalSuffix, true, s.logger.Load())
		if err != nil {
			s.logger.Load().Error("memory session store: cannot open its journal; a crash loses the changes since the last save",
				zap.String("file", path), zap.Error(err))
		} else {
			s.jnl.Store(j)
		}
	}
	s.persist.mu.Unlock()
	if path != "" {
		s.version.Add(1) // a snapshot now, whatever the last save was
		if err := s.save(); err != nil {
			s.logger.Load().Error("saving the memory session store to its new file failed", zap.Error(err))
		}
	}
}

// persistLoop writes the journal out every journalFlushEvery, and saves the
// store when it changed and interval has passed since the last save. It
// ticks often, so a reload that changes the interval takes effect at once.
func (s *memStore) persistLoop() {
	defer close(s.persistDone)
	t := time.NewTicker(journalFlushEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.flushJournal()
			if now.Sub(last) < time.Duration(s.persist.interval.Load()) {
				continue
			}
			last = now
			if err := s.save(); err != nil {
				s.logger.Load().Error("saving the memory session store failed; will try again", zap.Error(err))
			}
		}
	}
}

// save writes the store to its file when it changed since the last save:
// to a new file beside it first, then renamed over it, so a crash leaves
// the old file or the new, never half of one. It rotates the journal
// before it reads the shards, so every change is in the snapshot or in the
// new journal (or both, which replaying allows), and removes the rotated
// journal once the snapshot is in place.
func (s *memStore) save() error {
	p := s.persist.path.Load()
	if p == nil || *p == "" {
		return nil
	}
	path := *p
	s.persist.mu.Lock()
	defer s.persist.mu.Unlock()
	version := s.version.Load()
	if version == s.persist.saved.Load() {
		if _, err := os.Stat(path); err == nil {
			return nil // nothing changed since the file was written
		}
	}

	if j := s.jnl.Load(); j != nil && j.path == path+journalSuffix {
		if _, err := j.rotate(path + oldJournalSuffix); err != nil {
			s.logger.Load().Error("memory session store: rotating its journal failed", zap.String("file", path), zap.Error(err))
		}
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("persist %s: %w", path, err)
	}
	w := bufio.NewWriterSize(tmp, 1<<16)
	enc := json.NewEncoder(w)
	err = enc.Encode(persistHeader{Format: persistFormat, Saved: time.Now().UTC()})
	for i := range s.shards {
		if err != nil {
			break
		}
		err = s.shards[i].writeEntries(enc, s.now())
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("persist %s: %w", path, err)
	}
	s.persist.saved.Store(version)
	// The rename is durable only once the directory is: without this, a
	// power loss could keep the old snapshot while the journal it needs
	// is already removed below.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	// What the rotated journal held is in the snapshot now.
	if err := os.Remove(path + oldJournalSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Load().Warn("memory session store: cannot remove its rotated journal", zap.String("file", path), zap.Error(err))
	}
	return nil
}

// writeEntries encodes the shard's live entries. It copies them under the
// read lock and writes after, so the disk never holds up requests.
func (sh *memShard) writeEntries(enc *json.Encoder, now int64) error {
	sh.mu.RLock()
	batch := make([]persistEntry, 0, len(sh.heap))
	for _, i := range sh.heap {
		e := &sh.slots[i]
		if e.expired(now) || e.moved {
			continue // a grace record lasts seconds: a restart may drop it
		}
		t := decodeTail(string(sh.tail(i)))
		pe := persistEntry{Key: string(sh.key(i)), Data: sh.data(i), Renewed: e.renewed, Created: e.created, OwnExpiry: e.ownExpiry,
			Persist: e.persist, Scope: t.scope, Subject: t.subject, UserAgent: t.userAgent, Addr: t.addr}
		if e.expires != math.MaxInt64 {
			pe.Expires = e.expires
		}
		batch = append(batch, pe)
	}
	sh.mu.RUnlock()
	for i := range batch {
		if err := enc.Encode(&batch[i]); err != nil {
			return err
		}
	}
	return nil
}

// loadPersisted fills a new store from its file, dropping the sessions
// that expired meanwhile. A missing file is an empty store. A file that
// cannot be read or parsed is moved aside (path.corrupt-<time>), so that
// nothing is lost silently, and the store starts empty; either way the
// problem is logged, never fatal.
func (s *memStore) loadPersisted(path string) {
	s.loadSnapshot(path)
	// Then the journals, oldest first: what changed since the snapshot.
	replayed := s.replayJournal(path+oldJournalSuffix) + s.replayJournal(path+journalSuffix)
	s.enforceCap(probItem{})
	s.persist.mu.Lock()
	s.persist.journalFor, s.persist.loaded = path, true
	j, err := openJournal(path+journalSuffix, false, s.logger.Load())
	if err != nil {
		s.logger.Load().Error("memory session store: cannot open its journal; a crash loses the changes since the last save",
			zap.String("file", path), zap.Error(err))
	} else {
		s.jnl.Store(j)
	}
	s.persist.mu.Unlock()
	if replayed > 0 {
		s.logger.Load().Info("memory session store: replayed its journal", zap.String("file", path), zap.Int("records", replayed))
		// Fold the journals into a snapshot now, so that a flaw found in
		// them is not met again, and they do not grow on.
		if err := s.save(); err != nil {
			s.logger.Load().Error("saving the memory session store after replaying its journal failed", zap.Error(err))
		}
	} else {
		s.persist.saved.Store(s.version.Load())
	}
}

// loadSnapshot fills a new store from its snapshot file; see loadPersisted.
func (s *memStore) loadSnapshot(path string) {
	logger := s.logger.Load()
	entries, err := readPersisted(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			logger.Error("memory session store: cannot read its file, nor move it aside; starting empty",
				zap.String("file", path), zap.Error(err), zap.NamedError("rename_error", rerr))
			return
		}
		logger.Error("memory session store: cannot read its file; moved it aside and starting empty",
			zap.String("file", path), zap.String("moved_to", aside), zap.Error(err))
		return
	}
	now := s.now()
	loaded, expired := 0, 0
	for _, pe := range entries {
		if pe.Expires != 0 && pe.Expires <= now {
			expired++
			continue
		}
		// The file does not say which sessions were on probation (an older
		// version must still read it): a session saved is taken as seen,
		// so that a flood right after a restart cannot evict the users the
		// store held before it.
		e := memEntry{expires: pe.Expires, renewed: pe.Renewed, created: pe.Created, ownExpiry: pe.OwnExpiry, persist: pe.Persist, seen: 1}
		if e.expires == 0 {
			e.expires = math.MaxInt64
		}
		if e.persist > sessionstore.PersistOff {
			e.persist = sessionstore.PersistDefault
		}
		// A field too long (a file edited by hand) is dropped, not the
		// session; the subject index is rebuilt as the sessions are put.
		tail := metaTail{scope: pe.Scope, subject: pe.Subject, userAgent: pe.UserAgent, addr: pe.Addr}
		if err := s.put(pe.Key, tail.sanitized(), pe.Data, e); err != nil {
			logger.Error("memory session store: a session from its file does not fit; dropped", zap.Error(err))
			continue
		}
		loaded++
	}
	logger.Info("memory session store: loaded sessions from its file",
		zap.String("file", path), zap.Int("sessions", loaded), zap.Int("expired_dropped", expired))
}

// readPersisted parses a whole persist file; any flaw fails it whole.
func readPersisted(path string) ([]persistEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<16))
	dec.DisallowUnknownFields()
	var h persistHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Format != persistFormat {
		return nil, fmt.Errorf("header: format %q, want %q", h.Format, persistFormat)
	}
	var entries []persistEntry
	for dec.More() {
		var pe persistEntry
		if err := dec.Decode(&pe); err != nil {
			return nil, fmt.Errorf("session %d: %w", len(entries)+1, err)
		}
		if pe.Key == "" || !mergepatch.IsCompactASCIIObject(pe.Data) {
			return nil, fmt.Errorf("session %d: no key, or data that is not a JSON object", len(entries)+1)
		}
		entries = append(entries, pe)
	}
	return entries, nil
}

// checkPersistPath fails when the store could not write path: its
// directory missing or not writable, or path a directory, or an existing
// journal beside it that cannot be written. Provision calls it, so that
// such a file is a config error at once, not a failure to save at
// shutdown that loses every session.
func checkPersistPath(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("persist %s: its directory: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("persist %s: %s is not a directory", path, dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("persist %s: is a directory", path)
	}
	probe, err := os.CreateTemp(dir, filepath.Base(path)+".probe-*")
	if err != nil {
		return fmt.Errorf("persist %s: cannot write in its directory: %w", path, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	if f, err := os.OpenFile(path+journalSuffix, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("persist %s: its journal: %w", path, err)
	}
	return nil
}
