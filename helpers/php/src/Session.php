<?php

declare(strict_types=1);

namespace CaddySession;

/**
 * One request's session, as caddy-session hands it to the app in request
 * headers, and the app's changes, which go back in response headers as one
 * JSON merge patch (the gateway applies them and removes the headers).
 *
 *     $session = Session::fromGlobals(['secrets' => [getenv('SESSION_SECRET')]]);
 *     $session->set('counter', ($session->get('counter') ?? 0) + 1);
 *     $session->send();              // before any output
 *
 * Header values are ASCII only: the data is written in the gateway's
 * canonical JSON, and the gateway refuses an X-Session-Set that is not
 * valid UTF-8.
 */
final class Session
{
    public const DEFAULT_MAX_SIZE = 8000; // bytes of canonical JSON, the gateway's default max_size
    public const DEFAULT_MAX_AGE = 300;   // seconds a signature stays acceptable, either way
    public const MAX_EXPIRY = 34560000;   // 400 days, the gateway's bound on X-Session-Expiry
    public const MAX_SUBJECT_LENGTH = 256; // bytes of printable ASCII, the gateway's bound on X-Session-Subject
    public const HANDLE_LENGTH = 22;      // characters of base64url in a session's handle (X-Session-Revoke)
    /** The PSR-7 request attribute Middleware puts the session in. */
    public const ATTRIBUTE = 'caddySession';

    /** Whether the signature held; set when secrets are given, else false. */
    public bool $verified = false;

    private RawObject $base;
    private string $baseText;
    private RawObject $current;
    private bool $cleared = false;
    private bool $regenerate = false;
    private ?int $expiry = null;
    /** The subject to send; '' removes it, null sends none. */
    private ?string $subject = null;
    private ?string $revoke = null;
    private ?bool $persist = null;
    private bool $sent = false;
    /** @var array<string, string> */
    private array $names;

    private function __construct(
        public readonly ?string $id,
        public readonly bool $isNew,
        ?string $dataText,
        private readonly string $sessionName,
        private readonly int $maxSize,
    ) {
        $this->names = self::headerNames($sessionName);
        try {
            $base = $dataText === null ? new RawObject() : Json::parse($dataText);
        } catch (\Throwable) {
            $base = null;
        }
        // Not an object: not from the gateway. Start empty rather than fail.
        $this->base = $base instanceof RawObject ? $base : new RawObject();
        $this->baseText = Json::encode($this->base);
        $this->current = $this->base;
    }

    /**
     * The session of the current request, from $_SERVER (under php_fastcgi
     * the headers arrive as HTTP_X_SESSION_ID and so on). Options: secrets
     * (string or list; sets ->verified), maxAge, now, sessionName, maxSize.
     */
    public static function fromGlobals(array $options = []): self
    {
        return self::fromHeaders($_SERVER, $options);
    }

    /**
     * The session from a header array: names in any case (X-Session-Id), or
     * CGI style (HTTP_X_SESSION_ID) as in $_SERVER; a value may be a list of
     * one. Never throws on what the headers hold.
     */
    public static function fromHeaders(array $headers, array $options = []): self
    {
        $sessionName = (string) ($options['sessionName'] ?? 'session');
        $names = self::headerNames($sessionName);
        $session = new self(
            self::header($headers, $names['id']),
            self::header($headers, $names['new']) === 'true',
            self::header($headers, $names['data']),
            $sessionName,
            (int) ($options['maxSize'] ?? self::DEFAULT_MAX_SIZE),
        );
        if (isset($options['secrets'])) {
            $session->verified = self::verify($headers, $options['secrets'], $options);
        }
        return $session;
    }

    /**
     * Whether the session headers came from the gateway: X-Session-Signature
     * is t=<unix seconds>,v2=<hex>, an HMAC-SHA256 under one of $secrets of
     * "t.session_name.id.new.data", with t within maxAge seconds of now
     * (either way). Options: maxAge (300), now (unix seconds), sessionName.
     * Never throws: anything missing, empty, malformed, non-ASCII, stale or
     * wrong is false.
     */
    public static function verify(array $headers, string|array $secrets, array $options = []): bool
    {
        try {
            $sessionName = $options['sessionName'] ?? 'session';
            if (!is_string($sessionName)) {
                return false;
            }
            $names = self::headerNames($sessionName);
            $sig = self::header($headers, $names['signature']);
            $id = self::header($headers, $names['id']);
            $new = self::header($headers, $names['new']);
            $data = self::header($headers, $names['data']);
            if ($sig === null || $sig === '' || $id === null || $new === null || $data === null) {
                return false;
            }
            // The gateway signs ASCII only (canonical data is ASCII).
            foreach ([$sig, $id, $new, $data] as $v) {
                if (preg_match('/^[\x20-\x7e]*+\z/', $v) !== 1) {
                    return false;
                }
            }
            $t = null;
            $mac = null;
            foreach (explode(',', $sig) as $part) {
                $kv = explode('=', $part, 2);
                if (count($kv) !== 2 || $kv[0] === '') {
                    return false;
                }
                [$k, $v] = $kv;
                if ($k === 't') {
                    // \z, not $: $ would let a trailing newline through.
                    if ($t !== null || preg_match('/^[0-9]{1,15}\z/', $v) !== 1) {
                        return false;
                    }
                    $t = $v;
                } elseif ($k === 'v2') {
                    if ($mac !== null || preg_match('/^[0-9a-f]{64}\z/', $v) !== 1) {
                        return false;
                    }
                    $mac = $v;
                } // other keys: room for later versions, never trusted
            }
            if ($t === null || $mac === null) {
                return false;
            }
            $now = $options['now'] ?? microtime(true);
            $maxAge = $options['maxAge'] ?? self::DEFAULT_MAX_AGE;
            if (!is_int($now) && !is_float($now) || !is_int($maxAge) && !is_float($maxAge)) {
                return false;
            }
            if (!(abs($now - (int) $t) <= $maxAge)) {
                return false;
            }
            $message = $t . '.' . $sessionName . '.' . $id . '.' . $new . '.' . $data;
            $ok = false;
            foreach ((array) $secrets as $secret) {
                if (!is_string($secret) || $secret === '') {
                    continue;
                }
                // hash_equals: constant time. Every secret is tried.
                if (hash_equals(hash_hmac('sha256', $message, $secret), $mac)) {
                    $ok = true;
                }
            }
            return $ok;
        } catch (\Throwable) {
            return false;
        }
    }

    /**
     * The header names for a session_name, as the gateway derives them:
     * "session" gives X-Session-*, "alt_session" X-Alt-Session-*.
     *
     * @return array<string, string>
     */
    public static function headerNames(string $sessionName = 'session'): array
    {
        if (preg_match('/^[A-Za-z0-9_-]+\z/', $sessionName) !== 1) {
            throw new \InvalidArgumentException('caddy-session: invalid sessionName');
        }
        $words = explode('-', 'x-' . str_replace('_', '-', $sessionName) . '-');
        $prefix = implode('-', array_map(fn ($w) => ucfirst(strtolower($w)), $words));
        $out = [];
        foreach (['id' => 'Id', 'data' => 'Data', 'new' => 'New', 'signature' => 'Signature', 'set' => 'Set',
            'clear' => 'Clear', 'regenerate' => 'Regenerate', 'expiry' => 'Expiry',
            'subject' => 'Subject', 'revoke' => 'Revoke', 'persist' => 'Persist'] as $k => $suffix) {
            $out[$k] = $prefix . $suffix;
        }
        return $out;
    }

    /**
     * One header's value, or null when absent or there more than once (the
     * gateway sends each exactly once). Matches the name in any case, and
     * its CGI form (HTTP_X_SESSION_ID).
     */
    private static function header(array $headers, string $name): ?string
    {
        $lower = strtolower($name);
        $cgi = 'HTTP_' . strtoupper(str_replace('-', '_', $name));
        $found = null;
        $count = 0;
        foreach ($headers as $k => $v) {
            $k = (string) $k;
            if ($k === $cgi || strtolower($k) === $lower) {
                $found = $v;
                $count++;
            }
        }
        if ($count !== 1) {
            return null;
        }
        if (is_array($found)) {
            $found = count($found) === 1 ? reset($found) : null;
        }
        return is_string($found) ? $found : null;
    }

    // --- reading ------------------------------------------------------------

    /** The data as the app left it so far (objects as PHP arrays). */
    public function data(): array
    {
        return Json::toPhp($this->current);
    }

    /**
     * The data as the app left it so far, as canonical JSON: an object
     * always ({} when empty, where json_encode of data() would give []).
     */
    public function dataJson(): string
    {
        return Json::encode($this->current);
    }

    public function get(string $key, mixed $default = null): mixed
    {
        $v = $this->current->members[$key] ?? null;
        return $v === null ? $default : Json::toPhp($v);
    }

    public function has(string $key): bool
    {
        return array_key_exists($key, $this->current->members);
    }

    /** The data's size in bytes of canonical JSON, as the gateway counts it. */
    public function size(): int
    {
        return strlen(Json::encode($this->current));
    }

    // --- changing -----------------------------------------------------------

    /**
     * Stores $value under $key, replacing what was there (nested objects
     * too). null deletes the key. Null members inside objects are not kept,
     * as a merge patch cannot store them. An empty PHP array is a JSON
     * array: use new \stdClass() for an empty object.
     *
     * @throws SessionException SESSION_TOO_LARGE: nothing changed
     */
    public function set(string $key, mixed $value): self
    {
        $next = new RawObject($this->current->members);
        $raw = Json::toRaw($value);
        if ($raw === null) {
            unset($next->members[$key]);
        } else {
            $next->members[$key] = Json::withoutNullMembers($raw);
        }
        return $this->change($next);
    }

    /** Applies a JSON merge patch (RFC 7396), an array or stdClass. */
    public function update(array|\stdClass $patch): self
    {
        if (is_array($patch) && $patch !== [] && array_is_list($patch)) {
            throw new \InvalidArgumentException('caddy-session: a merge patch is an object, not a list');
        }
        $raw = Json::toRaw((object) $patch);
        return $this->change(Json::merge($this->current, $raw));
    }

    public function delete(string $key): self
    {
        if (!array_key_exists($key, $this->current->members)) {
            return $this;
        }
        $next = new RawObject($this->current->members);
        unset($next->members[$key]);
        return $this->change($next);
    }

    /**
     * Empties the session: the gateway deletes it and its cookie, and its
     * subject. Data set afterwards in the same response starts a session
     * under a new ID. A subject set before is dropped (set it again after
     * clear() for the new session); regenerate, setExpiry, setPersist and
     * revoke stay.
     */
    public function clear(): self
    {
        $this->assertOpen();
        $this->cleared = true;
        $this->current = new RawObject();
        $this->subject = null;
        return $this;
    }

    /** A new ID for the session, its data kept (after a login). */
    public function regenerate(): self
    {
        $this->assertOpen();
        $this->regenerate = true;
        return $this;
    }

    /** This session's own idle expiry in whole seconds (0: permanent), up to 400 days. */
    public function setExpiry(int $seconds): self
    {
        $this->assertOpen();
        if ($seconds < 0 || $seconds > self::MAX_EXPIRY) {
            throw new \RangeException('caddy-session: expiry must be whole seconds from 0 to ' . self::MAX_EXPIRY);
        }
        $this->expiry = $seconds;
        return $this;
    }

    /**
     * Names the session's owner (X-Session-Subject), typically the user's
     * ID, which the gateway keeps beside the session (not in the data) to
     * find the user's sessions: to list them, and for revokeOthers() and
     * revokeAll(). Send it with the data that logs the user in (and
     * regenerate()): the gateway keeps a subject only for a session that
     * has data. Printable ASCII (0x20 to 0x7E), 1 to 256 bytes, without a
     * leading or trailing space. removeSubject() removes it.
     *
     * @throws \InvalidArgumentException for any other subject: nothing changed
     */
    public function setSubject(string $subject): self
    {
        $this->assertOpen();
        if ($subject === '') {
            throw new \InvalidArgumentException('caddy-session: the subject is empty: removeSubject() removes the subject');
        }
        if (strlen($subject) > self::MAX_SUBJECT_LENGTH) {
            throw new \InvalidArgumentException('caddy-session: the subject is ' . strlen($subject) . ' bytes, more than ' . self::MAX_SUBJECT_LENGTH);
        }
        if ($subject[0] === ' ' || $subject[-1] === ' ') {
            throw new \InvalidArgumentException('caddy-session: the subject has a leading or trailing space');
        }
        if (preg_match('/[^\x20-\x7e]/', $subject, $m, PREG_OFFSET_CAPTURE) === 1) {
            throw new \InvalidArgumentException(sprintf(
                'caddy-session: the subject has byte 0x%02x at %d: only printable ASCII (0x20 to 0x7E) is allowed',
                ord($m[0][0]),
                $m[0][1],
            ));
        }
        $this->subject = $subject;
        return $this;
    }

    /**
     * Removes the session's subject (an empty X-Session-Subject): the
     * session no longer counts among its owner's. clear() removes it too.
     */
    public function removeSubject(): self
    {
        $this->assertOpen();
        $this->subject = '';
        return $this;
    }

    /**
     * Ends sessions of this session's subject (X-Session-Revoke), after the
     * response's other changes: $target is 'others' (every other session of
     * the subject: revokeOthers()), 'all' (every one, this one included:
     * revokeAll()) or a session's handle, 22 characters of base64url as the
     * gateway lists the subject's sessions (that session, if it is the
     * subject's). A response carries one target; the same one again is fine.
     *
     * @throws \InvalidArgumentException for any other target: nothing changed
     * @throws SessionException REVOKE_CONFLICT for a second, different target: the first stays
     */
    public function revoke(string $target): self
    {
        $this->assertOpen();
        if ($target !== 'others' && $target !== 'all' && preg_match('/^[A-Za-z0-9_-]{' . self::HANDLE_LENGTH . '}\z/', $target) !== 1) {
            throw new \InvalidArgumentException(sprintf(
                'caddy-session: revoke %s: want "others", "all" or a session handle (%d characters of base64url)',
                json_encode(substr($target, 0, 40), JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES),
                self::HANDLE_LENGTH,
            ));
        }
        if ($this->revoke !== null && $this->revoke !== $target) {
            throw new SessionException(
                SessionException::REVOKE_CONFLICT,
                "caddy-session: revoke \"$target\": this response already revokes \"{$this->revoke}\", and carries one revoke",
            );
        }
        $this->revoke = $target;
        return $this;
    }

    /**
     * Ends every other session of this session's subject: "sign out other
     * devices", after a password change say. At a login, send it with
     * setSubject() (and regenerate()): this session stays.
     */
    public function revokeOthers(): self
    {
        return $this->revoke('others');
    }

    /**
     * Ends every session of this session's subject, this one included
     * ("sign out everywhere"): the gateway deletes this response's cookie.
     */
    public function revokeAll(): self
    {
        return $this->revoke('all');
    }

    /**
     * Chooses this session's cookie (X-Session-Persist), a "remember me":
     * true makes it persistent (with a Max-Age, as the gateway's expiry or
     * setExpiry() gives it), false a browser-session cookie (without),
     * whatever the gateway's sessioncookie says. The gateway keeps the
     * choice for the session, across renewals and regenerates.
     */
    public function setPersist(bool $persist): self
    {
        $this->assertOpen();
        $this->persist = $persist;
        return $this;
    }

    // --- sending ------------------------------------------------------------

    /** The merge patch the response carries (canonical JSON), or null when nothing changed. */
    public function patch(): ?string
    {
        $p = Json::diff($this->cleared ? new RawObject() : $this->base, $this->current);
        return $p->members === [] ? null : Json::encode($p);
    }

    /**
     * The response headers to send, as [name, value] pairs, ASCII only.
     *
     * @return list<array{0: string, 1: string}>
     */
    public function responseHeaders(): array
    {
        $out = [];
        if ($this->cleared) {
            $out[] = [$this->names['clear'], 'true'];
        }
        if ($this->regenerate) {
            $out[] = [$this->names['regenerate'], 'true'];
        }
        $patch = $this->patch();
        if ($patch !== null) {
            $out[] = [$this->names['set'], $patch];
        }
        if ($this->expiry !== null) {
            $out[] = [$this->names['expiry'], (string) $this->expiry];
        }
        if ($this->subject !== null) {
            $out[] = [$this->names['subject'], $this->subject];
        }
        if ($this->persist !== null) {
            $out[] = [$this->names['persist'], $this->persist ? 'true' : 'false'];
        }
        if ($this->revoke !== null) {
            $out[] = [$this->names['revoke'], $this->revoke];
        }
        return $out;
    }

    /**
     * Sends the headers with header(): call it before any output. Each with
     * replace=false, so that none replaces another (or one the app sent).
     *
     * @throws SessionException SESSION_SENT when PHP already sent the headers
     */
    public function send(): void
    {
        $this->assertOpen();
        $headers = $this->responseHeaders();
        if ($headers !== [] && headers_sent($file, $line)) {
            throw new SessionException(SessionException::SENT, "caddy-session: output started at $file:$line, the session's headers cannot be sent");
        }
        foreach ($headers as [$name, $value]) {
            header("$name: $value", false);
        }
        $this->markSent();
    }

    /** Records that the headers went out: later changes throw rather than vanish. */
    public function markSent(): void
    {
        $this->sent = true;
    }

    private function assertOpen(): void
    {
        if ($this->sent) {
            throw new SessionException(SessionException::SENT, "caddy-session: the session's headers were already sent; this change would be lost");
        }
    }

    /** Makes $next the data, unless the gateway would refuse it for size. */
    private function change(RawObject $next): self
    {
        $this->assertOpen();
        $text = Json::encode($next);
        $current = $this->cleared ? '{}' : $this->baseText;
        if (Json::overSize($text, $current, $this->maxSize)) {
            throw new SessionException(
                SessionException::TOO_LARGE,
                'caddy-session: the session would be ' . strlen($text) . " bytes of JSON, over max_size {$this->maxSize}",
                strlen($text),
                $this->maxSize,
            );
        }
        $this->current = $next;
        return $this;
    }
}
