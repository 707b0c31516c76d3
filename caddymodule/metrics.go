package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// Store operations, as the metrics label them.
const (
	opLoad = iota
	opPatch
	opDelete
	opRename
	opListSubject
	opDeleteSubject
	opCount
)

var opNames = [opCount]string{"load", "patch", "delete", "rename", "list_subject", "delete_subject"}

// Reasons in caddy_session_destroyed_total and caddy_session_rejected_total.
const (
	destroyedCleared     = "cleared"
	destroyedRegenerated = "regenerated"
	destroyedRevoked     = "revoked"
	destroyedExpired     = sessionstore.RemovedExpired // also: max_lifetime reached

	refusedInvalidJSON = "invalid_json" // an X-Session-Set that is not a JSON object
	refusedInvalidUTF8 = "invalid_utf8" // an X-Session-Set that is not UTF-8
	refusedBadValue    = "bad_value"    // a Clear, Regenerate or Expiry value out of its set
	refusedTooLarge    = "too_large"    // a change past max_size
	refusedUnloaded    = "unloaded"     // changes to a session the store failed to load
	refusedSuperseded  = "superseded"   // changes under an ID a regenerate has just replaced
	refusedNoSubject   = "no_subject"   // a Revoke for a session without a subject
	refusedNoSession   = "no_session"   // a Subject or Persist for a session without data
	refusedNoIndex     = "no_index"     // a Revoke through a store that cannot find sessions by subject
	refusedEnded       = "ended"        // changes to a signed-in session that was signed out meanwhile

	rejectedUnknown      = "unknown"       // a well-formed ID the store does not hold
	rejectedMalformed    = "malformed"     // a cookie value that is not an ID
	rejectedBadSignature = "bad_signature" // a signed value whose signature fails
	rejectedForeign      = "other_site"    // a session of another site (scope)
)

// metrics are the session collectors. They are made once per registry, so
// their counts survive config reloads, and registered into each config's
// metrics registry, so they show on Caddy's /metrics like its own. No label
// ever carries a session ID.
type metrics struct {
	created       *prometheus.CounterVec
	destroyed     *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	refused       *prometheus.CounterVec
	revoked       *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	storeDuration *prometheus.HistogramVec
	active        *activeCollector
}

func newMetrics(reg *registry) *metrics {
	const ns, sub = "caddy", "session"
	return &metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "created_total",
			Help: "Sessions created: first stored with data.",
		}, []string{"session_name"}),
		destroyed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "destroyed_total",
			Help: "Sessions ended, by reason: cleared, expired, evicted, regenerated (the old ID), revoked.",
		}, []string{"session_name", "reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_total",
			Help: "Session cookies refused, by reason: unknown (an ID the store does not hold), malformed, bad_signature, other_site.",
		}, []string{"session_name", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "Upstream instructions refused, by reason: invalid_json, invalid_utf8, bad_value, too_large, unloaded, superseded, no_subject, no_session, no_index, ended.",
		}, []string{"session_name", "reason"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "revoked_total",
			Help: "Sessions ended by revocation, by who asked: others, all or handle (X-Session-Revoke), devices (the devices endpoint), admin (the admin API).",
		}, []string{"session_name", "by"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_errors_total",
			Help: "Session store operations that failed.",
		}, []string{"session_name", "operation"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "store_duration_seconds",
			Help:    "Latency of session store operations.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12), // 50µs to about 1.2s
		}, []string{"backend", "operation"}),
		active: &activeCollector{
			reg: reg,
			desc: prometheus.NewDesc("caddy_session_active",
				"Sessions held, by session_name, where the store can count (a store shared by several session names counts all it holds).",
				[]string{"session_name"}, nil),
		},
	}
}

// register adds the collectors to a config's registry; a collector that is
// already there (another handler of the same config) is fine.
func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.created, m.destroyed, m.rejected, m.refused, m.revoked, m.storeErrors, m.storeDuration, m.active} {
		if err := r.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				continue
			}
			return fmt.Errorf("registering session metrics: %w", err)
		}
	}
	return nil
}

// handlerMetrics are one handler's children of the collectors, looked up
// once at provision so the request path does no label lookups.
type handlerMetrics struct {
	m             *metrics
	sessionName   string
	created       prometheus.Counter
	storeErrors   [opCount]prometheus.Counter
	storeDuration [opCount]prometheus.Observer
}

func (m *metrics) forHandler(sessionName, backend string) *handlerMetrics {
	hm := &handlerMetrics{
		m:           m,
		sessionName: sessionName,
		created:     m.created.WithLabelValues(sessionName),
	}
	for op := range opCount {
		hm.storeErrors[op] = m.storeErrors.WithLabelValues(sessionName, opNames[op])
		hm.storeDuration[op] = m.storeDuration.WithLabelValues(backend, opNames[op])
	}
	return hm
}

// rejected counts a refused cookie. Refusals are rare next to requests, so
// the label lookup is done here.
func (hm *handlerMetrics) rejected(reason string) {
	hm.m.rejected.WithLabelValues(hm.sessionName, reason).Inc()
}

// refused counts a refused upstream instruction.
func (hm *handlerMetrics) refused(reason string) {
	hm.m.refused.WithLabelValues(hm.sessionName, reason).Inc()
}

// revoked counts n sessions ended by revocation, asked for by by.
func (hm *handlerMetrics) revoked(by string, n int) {
	if n > 0 {
		hm.m.revoked.WithLabelValues(hm.sessionName, by).Add(float64(n))
		hm.m.destroyed.WithLabelValues(hm.sessionName, destroyedRevoked).Add(float64(n))
	}
}

func (hm *handlerMetrics) destroyed(reason string) {
	hm.m.destroyed.WithLabelValues(hm.sessionName, reason).Inc()
}

// storeOp records one store operation that began at start. A session that
// is not there, or a change refused for its size, is an answer, not a
// failure.
func (hm *handlerMetrics) storeOp(op int, start time.Time, err error) {
	hm.storeDuration[op].Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, sessionstore.ErrNotFound) && !errors.Is(err, sessionstore.ErrTooLarge) {
		hm.storeErrors[op].Inc()
	}
}

// meteredStore is the handler's store as the request path uses it: each
// operation is timed into caddy_session_store_duration_seconds and its
// failures counted in caddy_session_store_errors_total.
type meteredStore struct {
	store   sessionstore.Store
	metrics *handlerMetrics
}

func (s meteredStore) Load(ctx context.Context, key string, ttl time.Duration) (sessionstore.Entry, error) {
	start := time.Now()
	e, err := s.store.Load(ctx, key, ttl)
	s.metrics.storeOp(opLoad, start, err)
	return e, err
}

func (s meteredStore) Patch(ctx context.Context, key string, patches []string, opts sessionstore.PatchOptions) (string, error) {
	start := time.Now()
	data, err := s.store.Patch(ctx, key, patches, opts)
	s.metrics.storeOp(opPatch, start, err)
	return data, err
}

func (s meteredStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := s.store.Delete(ctx, key)
	s.metrics.storeOp(opDelete, start, err)
	return err
}

func (s meteredStore) Rename(ctx context.Context, oldKey, newKey string, opts sessionstore.RenameOptions) error {
	start := time.Now()
	err := s.store.Rename(ctx, oldKey, newKey, opts)
	s.metrics.storeOp(opRename, start, err)
	return err
}

// activeCollector reports caddy_session_active at scrape time from the
// stores that can count.
type activeCollector struct {
	reg  *registry
	desc *prometheus.Desc
}

func (c *activeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *activeCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	counted := map[string]map[any]bool{}
	for _, s := range c.reg.stores("") {
		counter, ok := s.store.(sessionstore.Counter)
		if !ok {
			continue
		}
		id := storeIdentity(s.store)
		if counted[s.sessionName] == nil {
			counted[s.sessionName] = map[any]bool{}
		}
		if counted[s.sessionName][id] {
			continue // one store under two prefixes: count it once
		}
		counted[s.sessionName][id] = true
		counts[s.sessionName] += counter.Len()
	}
	for name, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), name)
	}
}
