// Package redisstore is the Redis session store: sessions shared by every
// Caddy instance that uses the same Redis, kept in the layout of
// sanic_session's Redis backend.
package redisstore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
)

func init() {
	caddy.RegisterModule(RedisStore{})
}

// clients holds the Redis clients by their connection settings, so a config
// reload reuses the connections (and the cache) instead of dialing anew.
var clients = caddy.NewUsagePool()

// Defaults for a gateway in front of every request: a slow Redis must not
// hold requests for long.
const (
	defaultDialTimeout  = time.Second
	defaultReadTimeout  = time.Second
	defaultWriteTimeout = time.Second
	// DefaultCacheSize is the default cache_size: the bytes of session
	// data (and their keys) kept in the client-side cache per connection
	// to a Redis node.
	DefaultCacheSize = 32 << 20
)

// RedisStore keeps sessions in Redis: one server, a Sentinel-managed
// primary (with MasterName), or a Redis Cluster (several addresses). Every
// Caddy instance pointed at the same Redis shares the sessions, and they
// outlive Caddy restarts.
//
// The layout is sanic_session's: key = prefix + ID, value = the session
// data as JSON text, TTL = the session's expiry; the key holds nothing
// else. Beside it, only when needed: a hash `{<key>}:meta` with the
// session's TTL, holding `created` (unix ms), `expiry` (its own, in ms; -1
// for permanent) and `scope` (the site it belongs to), so a session
// written with a scope has one; for a permanent session (expiry 0, no TTL)
// a marker `{<key>}:renewed`, with a TTL of a tenth of the cookie's
// lifetime, recording when its cookie was last renewed; and after a
// regenerate with a grace, `{<oldkey>}:moved`, holding the new key, with
// the grace as its TTL (the old key itself is gone, so a sanic_session
// app reading it sees no session).
type RedisStore struct {
	// Address lists the Redis servers as URLs, `redis://[user:password@]host:port[/db]`,
	// `rediss://...` for TLS, or `unix:///path/to/redis.sock[?db=N]` for a
	// Redis on the same host (cheaper per request than TCP), or as plain
	// `host:port`. One address is
	// one server; several are the seed nodes of a Redis Cluster, or the
	// Sentinels when MasterName is set. Placeholders such as
	// {env.REDIS_URL} are replaced at provision.
	// Default: `redis://127.0.0.1:6379/0`.
	Address []string `json:"address,omitempty"`

	// Username for Redis ACL authentication; overrides one in the URL.
	Username string `json:"username,omitempty"`

	// Password for Redis authentication; overrides one in the URL.
	// Write it as {env.REDIS_PASSWORD} to keep it out of the config.
	Password string `json:"password,omitempty"`

	// MasterName is the name of the primary that the Sentinels at
	// Address watch. Set, it makes Address a list of Sentinels.
	MasterName string `json:"master_name,omitempty"`

	// PoolSize is the size of the pool of dedicated connections per Redis
	// node, used only by a rename across Redis Cluster slots (every other
	// command is pipelined on one shared connection per node).
	// Default: 1000 (rueidis's).
	PoolSize int `json:"pool_size,omitempty"`

	// CacheSize bounds the client-side cache of session reads, in bytes
	// per connection to a Redis node (one per node, so a single server
	// has one cache of this size). Redis keeps the cache true: it tells
	// every instance that read a key when the key changes, expires or is
	// deleted (RESP3 client tracking, Redis 6 or later); a Redis that
	// cannot track gets uncached reads. Default: 32 MiB.
	CacheSize int `json:"cache_size,omitempty"`

	// DialTimeout bounds connecting to Redis. Default: 1s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// ReadTimeout bounds waiting for a reply. Default: 1s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// WriteTimeout bounds sending a command. Default: 1s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// TLSCA is a PEM file of the certificate authorities that sign the
	// Redis servers' certificates, for rediss:// addresses. Default: the
	// system's roots.
	TLSCA string `json:"tls_ca,omitempty"`

	// TLSInsecureSkipVerify turns off verification of the servers'
	// certificates. For tests only. Default: false.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`

	// OnError says what a request gets when Redis cannot be reached or
	// answers with an error: `open` serves it with a fresh session and
	// writes nothing over stored data; `closed` answers 503 Service
	// Unavailable. Default: `open`.
	OnError string `json:"on_error,omitempty"`

	pc      *pooledClient
	cluster bool
	poolKey string
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.session.stores.redis",
		New: func() caddy.Module { return new(RedisStore) },
	}
}

// Provision resolves placeholders, checks the settings, and gets the shared
// client for them. It does not wait for Redis: Caddy starts while Redis is
// down, and serves as on_error says until it is back.
func (s *RedisStore) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	for i, a := range s.Address {
		s.Address[i] = repl.ReplaceAll(a, "")
	}
	s.Username = repl.ReplaceAll(s.Username, "")
	s.Password = repl.ReplaceAll(s.Password, "")
	s.MasterName = repl.ReplaceAll(s.MasterName, "")
	s.TLSCA = repl.ReplaceAll(s.TLSCA, "")
	if len(s.Address) == 0 {
		s.Address = []string{"redis://127.0.0.1:6379/0"}
	}
	if s.OnError == "" {
		s.OnError = "open"
	}
	if err := s.Validate(); err != nil {
		return err
	}

	opts, err := s.clientOptions()
	if err != nil {
		return err
	}
	s.cluster = len(opts.InitAddress) > 1 && opts.Sentinel.MasterSet == ""
	s.poolKey, err = settingsKey(opts, s)
	if err != nil {
		return err
	}
	val, _, err := clients.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		return newPooledClient(opts, s.logger.Named("redis"), redactedAddresses(s.Address)), nil
	})
	if err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	s.pc = val.(*pooledClient)
	if err := s.pc.register(ctx.GetMetricsRegistry(), s.poolKey[len("redis/"):][:12]); err != nil {
		_, _ = clients.Delete(s.poolKey)
		return fmt.Errorf("redis store: %w", err)
	}
	return nil
}

// Validate checks the settings.
func (s *RedisStore) Validate() error {
	switch s.OnError {
	case "", "open", "closed":
	default:
		return fmt.Errorf("redis store: on_error: must be open or closed, got %q", s.OnError)
	}
	if s.PoolSize < 0 {
		return fmt.Errorf("redis store: pool_size: must not be negative, got %d", s.PoolSize)
	}
	if s.CacheSize < 0 {
		return fmt.Errorf("redis store: cache_size: must not be negative, got %d", s.CacheSize)
	}
	for name, d := range map[string]caddy.Duration{"dial_timeout": s.DialTimeout, "read_timeout": s.ReadTimeout, "write_timeout": s.WriteTimeout} {
		if d < 0 {
			return fmt.Errorf("redis store: %s: must not be negative, got %s", name, time.Duration(d))
		}
	}
	for _, a := range s.Address {
		if _, err := parseAddress(a); err != nil {
			return fmt.Errorf("redis store: address %q: %w", redact(a), err)
		}
	}
	return nil
}

// Cleanup releases this config's use of the client; the last user closes it.
func (s *RedisStore) Cleanup() error {
	if s.pc == nil {
		return nil
	}
	_, err := clients.Delete(s.poolKey)
	return err
}

// FailClosed reports whether a store failure should refuse the request.
func (s *RedisStore) FailClosed() bool { return s.OnError == "closed" }

// address is one parsed entry of Address.
type address struct {
	hostPort           string // or a unix socket's path
	db                 int
	username, password string
	tls                bool
	unix               bool // a unix:// socket: one server only
}

func parseAddress(a string) (address, error) {
	if !strings.Contains(a, "://") {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return address{}, fmt.Errorf("want redis://host:port, rediss://host:port or host:port: %w", err)
		}
		return address{hostPort: a}, nil
	}
	u, err := url.Parse(a)
	if err != nil {
		// url's error quotes the whole URL, password and all.
		return address{}, errors.New("not a valid URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix" {
		return address{}, fmt.Errorf("scheme must be redis, rediss or unix, got %q", u.Scheme)
	}
	if u.Scheme != "unix" {
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return address{}, errors.New("want host:port after the scheme")
		}
	} else if u.Path == "" {
		return address{}, errors.New("want unix:///path/to/redis.sock")
	}
	o, err := rueidis.ParseURL(a)
	if err != nil {
		return address{}, errors.New(strings.ReplaceAll(err.Error(), a, redact(a)))
	}
	return address{hostPort: o.InitAddress[0], db: o.SelectDB, username: o.Username, password: o.Password, tls: o.TLSConfig != nil, unix: u.Scheme == "unix"}, nil
}

// clientOptions turns the settings into rueidis options. Database,
// credentials and TLS come from the first address; the explicit username
// and password override them.
func (s *RedisStore) clientOptions() (rueidis.ClientOption, error) {
	var first address
	addrs := make([]string, 0, len(s.Address))
	for i, a := range s.Address {
		pa, err := parseAddress(a)
		if err != nil {
			return rueidis.ClientOption{}, fmt.Errorf("redis store: address %q: %w", redact(a), err)
		}
		if i == 0 {
			first = pa
		} else if pa.tls != first.tls {
			return rueidis.ClientOption{}, fmt.Errorf("redis store: address %q: mixes redis:// and rediss://", redact(a))
		}
		if pa.unix && len(s.Address) > 1 {
			return rueidis.ClientOption{}, fmt.Errorf("redis store: address %q: a unix socket is one server; it cannot be one of several addresses", redact(a))
		}
		addrs = append(addrs, pa.hostPort)
	}
	if len(addrs) > 1 && s.MasterName == "" && first.db != 0 {
		return rueidis.ClientOption{}, fmt.Errorf("redis store: address: Redis Cluster has only database 0, got %d", first.db)
	}
	dial := durationOr(s.DialTimeout, defaultDialTimeout)
	opts := rueidis.ClientOption{
		InitAddress:       addrs,
		SelectDB:          first.db,
		Username:          first.username,
		Password:          first.password,
		Dialer:            net.Dialer{Timeout: dial, KeepAlive: time.Minute},
		ConnWriteTimeout:  max(durationOr(s.ReadTimeout, defaultReadTimeout), durationOr(s.WriteTimeout, defaultWriteTimeout)),
		BlockingPoolSize:  s.PoolSize,
		CacheSizeEachConn: s.CacheSize,
		DisableRetry:      true, // a failure is the failure detector's to judge, at once
		ForceSingleClient: len(addrs) == 1 && s.MasterName == "",
	}
	if opts.CacheSizeEachConn == 0 {
		opts.CacheSizeEachConn = DefaultCacheSize
	}
	if s.MasterName != "" {
		opts.Sentinel = rueidis.SentinelOption{MasterSet: s.MasterName, Dialer: opts.Dialer}
		opts.ForceSingleClient = false
	}
	if first.unix {
		opts.DialCtxFn = func(ctx context.Context, path string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
	}
	if s.Username != "" {
		opts.Username = s.Username
	}
	if s.Password != "" {
		opts.Password = s.Password
	}
	if first.tls || s.TLSCA != "" || s.TLSInsecureSkipVerify {
		tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.TLSInsecureSkipVerify} //nolint:gosec // opt-in, documented as for tests
		if s.TLSCA != "" {
			pem, err := os.ReadFile(s.TLSCA)
			if err != nil {
				return rueidis.ClientOption{}, fmt.Errorf("redis store: tls_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return rueidis.ClientOption{}, fmt.Errorf("redis store: tls_ca: no PEM certificate in %s", s.TLSCA)
			}
			tlsConfig.RootCAs = pool
		}
		if host, _, err := net.SplitHostPort(addrs[0]); err == nil && !s.TLSInsecureSkipVerify {
			tlsConfig.ServerName = host
		}
		opts.TLSConfig = tlsConfig
		if s.MasterName != "" {
			opts.Sentinel.TLSConfig = tlsConfig
		}
	}
	return opts, nil
}

// settingsKey identifies a client by everything that shapes its
// connections; configs with the same key share one client.
func settingsKey(opts rueidis.ClientOption, s *RedisStore) (string, error) {
	b, err := json.Marshal(struct {
		Addrs                          []string
		DB                             int
		Username, Password, MasterName string
		PoolSize, CacheSize            int
		Dial, Read, Write              time.Duration
		TLS                            bool
		TLSCA                          string
		Insecure                       bool
	}{opts.InitAddress, opts.SelectDB, opts.Username, opts.Password, s.MasterName, s.PoolSize, opts.CacheSizeEachConn,
		opts.Dialer.Timeout, time.Duration(s.ReadTimeout), time.Duration(s.WriteTimeout), opts.TLSConfig != nil, s.TLSCA, s.TLSInsecureSkipVerify})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "redis/" + hex.EncodeToString(sum[:]), nil
}

func durationOr(d caddy.Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// redact hides a password in an address URL, for errors and logs.
func redact(a string) string {
	u, err := url.Parse(a)
	if err != nil {
		if strings.Contains(a, "@") {
			return "(an address that is not a URL)"
		}
		return a
	}
	if u.User == nil {
		return a
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func redactedAddresses(as []string) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = redact(a)
	}
	return out
}

// Interface guards
var (
	_ sessionstore.Store     = (*RedisStore)(nil)
	_ sessionstore.Inspector = (*RedisStore)(nil)
	_ sessionstore.Shared    = (*RedisStore)(nil)
	_ caddy.Provisioner      = (*RedisStore)(nil)
	_ caddy.Validator        = (*RedisStore)(nil)
	_ caddy.CleanerUpper     = (*RedisStore)(nil)
	_ caddy.Destructor       = (*pooledClient)(nil)
	_ rueidis.CacheStore     = (*cacheStore)(nil)
)
