<?php

declare(strict_types=1);

namespace CaddySession;

/**
 * The gateway's canonical JSON and merge patches, in PHP.
 *
 * Canonical form: compact, object keys sorted by their UTF-8 bytes (code
 * point order), every character outside printable ASCII (DEL included) as a
 * lowercase \u escape, characters above the BMP as surrogate pairs, numbers
 * exactly as written. The output is ASCII, so it is safe in a header, and
 * its length is the size the gateway holds against max_size.
 *
 * Data is handled as a "raw" tree: RawObject for objects, PHP lists for
 * arrays, RawNumber for numbers, strings, bools and null as themselves.
 */
final class Json
{
    /** Nesting the parser accepts; data under max_size never comes close. */
    private const MAX_DEPTH = 512;

    private function __construct(private readonly string $s, private int $i = 0)
    {
    }

    /** Parses JSON text (RFC 8259, as strict as the gateway) into a raw tree. */
    public static function parse(string $text): mixed
    {
        $p = new self($text);
        $v = $p->value(0);
        $p->ws();
        if ($p->i !== strlen($text)) {
            $p->fail();
        }
        return $v;
    }

    /** Returns JSON text in canonical form. */
    public static function canonicalize(string $text): string
    {
        return self::encode(self::parse($text));
    }

    /** Returns the canonical JSON of an app's value (see toRaw). */
    public static function canonical(mixed $value): string
    {
        return self::encode(self::toRaw($value));
    }

    /** Writes a raw tree in canonical form. */
    public static function encode(mixed $v): string
    {
        if ($v === null) {
            return 'null';
        }
        if ($v === true) {
            return 'true';
        }
        if ($v === false) {
            return 'false';
        }
        if (is_string($v)) {
            return self::quote($v);
        }
        if ($v instanceof RawNumber) {
            return $v->text;
        }
        if ($v instanceof RawObject) {
            $keys = array_map('strval', array_keys($v->members));
            usort($keys, 'strcmp'); // bytes of UTF-8: code point order, the gateway's
            $out = [];
            foreach ($keys as $k) {
                $out[] = self::quote($k) . ':' . self::encode($v->members[$k]);
            }
            return '{' . implode(',', $out) . '}';
        }
        if (is_array($v)) {
            return '[' . implode(',', array_map([self::class, 'encode'], $v)) . ']';
        }
        throw new \InvalidArgumentException('caddy-session: not a raw JSON value');
    }

    /**
     * Writes a string as canonical JSON. json_encode without
     * JSON_UNESCAPED_UNICODE already writes every non-ASCII character as a
     * lowercase \u escape (pairs above the BMP); DEL it leaves as it is, and
     * bytes that are not UTF-8 become U+FFFD, as the gateway would make them.
     */
    public static function quote(string $s): string
    {
        $out = json_encode($s, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR);
        return str_replace("\x7f", '\u007f', $out);
    }

    /**
     * Turns an app's value into a raw tree: arrays that are lists become JSON
     * arrays, other arrays and stdClass objects JSON objects, JsonSerializable
     * what it serializes to. A float that is not finite, or any other object,
     * is refused.
     */
    public static function toRaw(mixed $v, int $depth = 0): mixed
    {
        if ($depth > self::MAX_DEPTH) {
            throw new \InvalidArgumentException('caddy-session: value nested too deep');
        }
        if ($v === null || is_bool($v) || $v instanceof RawNumber) {
            return $v;
        }
        if (is_string($v)) {
            return self::validUtf8($v);
        }
        if (is_int($v)) {
            return new RawNumber((string) $v);
        }
        if (is_float($v)) {
            if (!is_finite($v)) {
                throw new \InvalidArgumentException('caddy-session: a float that is not finite cannot be stored in JSON');
            }
            return new RawNumber(json_encode($v, JSON_THROW_ON_ERROR));
        }
        if ($v instanceof \JsonSerializable) {
            return self::toRaw($v->jsonSerialize(), $depth + 1);
        }
        if ($v instanceof RawObject || $v instanceof \stdClass || (is_array($v) && !array_is_list($v))) {
            $members = $v instanceof RawObject ? $v->members : (array) $v;
            $obj = new RawObject();
            foreach ($members as $k => $x) {
                $obj->members[self::validUtf8((string) $k)] = self::toRaw($x, $depth + 1);
            }
            return $obj;
        }
        if (is_array($v)) {
            return array_map(fn ($x) => self::toRaw($x, $depth + 1), $v);
        }
        throw new \InvalidArgumentException('caddy-session: a ' . get_debug_type($v) . ' cannot be stored in JSON');
    }

    /** Applies merge patch $patch to $target (RFC 7396, section 2). */
    public static function merge(mixed $target, mixed $patch): mixed
    {
        if (!$patch instanceof RawObject) {
            return $patch;
        }
        $out = new RawObject($target instanceof RawObject ? $target->members : []);
        foreach ($patch->members as $k => $v) {
            if ($v === null) {
                unset($out->members[$k]);
            } else {
                $out->members[$k] = self::merge($out->members[$k] ?? null, $v);
            }
        }
        return $out;
    }

    /**
     * Returns the merge patch that turns $base into $next ($next holds no
     * null members). Only what changed is in it, so concurrent requests
     * changing other keys of the same session lose nothing.
     */
    public static function diff(RawObject $base, RawObject $next): RawObject
    {
        $patch = new RawObject();
        foreach ($base->members as $k => $_) {
            if (!array_key_exists($k, $next->members)) {
                $patch->members[$k] = null;
            }
        }
        foreach ($next->members as $k => $v) {
            $old = array_key_exists($k, $base->members) ? $base->members[$k] : new \stdClass(); // stdClass: absent
            if ($old instanceof RawObject && $v instanceof RawObject) {
                $sub = self::diff($old, $v);
                if ($sub->members !== []) {
                    $patch->members[$k] = $sub;
                }
            } elseif ($old instanceof \stdClass || self::encode($old) !== self::encode($v)) {
                $patch->members[$k] = $v;
            }
        }
        return $patch;
    }

    /** Drops null members of objects at every level: the gateway's merge drops them. */
    public static function withoutNullMembers(mixed $v): mixed
    {
        if ($v instanceof RawObject) {
            $out = new RawObject();
            foreach ($v->members as $k => $x) {
                if ($x !== null) {
                    $out->members[$k] = self::withoutNullMembers($x);
                }
            }
            return $out;
        }
        return is_array($v) ? array_map([self::class, 'withoutNullMembers'], $v) : $v;
    }

    /**
     * Applies merge patches (JSON texts) in order to $data (a JSON object's
     * text, '' for none) and returns the result in canonical form.
     */
    public static function applyPatches(string $data, array $patches): string
    {
        $obj = $data === '' ? new RawObject() : self::parse($data);
        if (!$obj instanceof RawObject) {
            throw new \InvalidArgumentException('caddy-session: data is not a JSON object');
        }
        foreach ($patches as $p) {
            $patch = self::parse($p);
            if (!$patch instanceof RawObject) {
                throw new \InvalidArgumentException('caddy-session: a patch is not a JSON object');
            }
            $obj = self::merge($obj, $patch);
        }
        return self::encode($obj);
    }

    /**
     * Whether the gateway refuses $result (canonical JSON) in place of
     * $current: it passes the limit and grows the data. Data already over a
     * lowered limit may still shrink.
     */
    public static function overSize(string $result, string $current, int $limit): bool
    {
        return $limit > 0 && strlen($result) > $limit && strlen($result) > strlen($current);
    }

    /** Turns a raw tree into the PHP values an app reads: objects as arrays, as json_decode(..., true). */
    public static function toPhp(mixed $v): mixed
    {
        return json_decode(self::encode($v), true, 4096, JSON_THROW_ON_ERROR);
    }

    private static function validUtf8(string $s): string
    {
        if (preg_match('//u', $s) === 1) {
            return $s;
        }
        return json_decode(json_encode($s, JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR), false, 1, JSON_THROW_ON_ERROR);
    }

    // --- the parser ---------------------------------------------------------

    private function fail(): never
    {
        throw new \JsonException("caddy-session: invalid JSON at offset {$this->i}");
    }

    private function ws(): void
    {
        $this->i += strspn($this->s, " \t\n\r", $this->i);
    }

    private function value(int $depth): mixed
    {
        if ($depth > self::MAX_DEPTH) {
            $this->fail();
        }
        $this->ws();
        $c = $this->s[$this->i] ?? '';
        if ($c === '{') {
            $this->i++;
            $obj = new RawObject();
            $this->ws();
            if (($this->s[$this->i] ?? '') === '}') {
                $this->i++;
                return $obj;
            }
            for (;;) {
                $this->ws();
                if (($this->s[$this->i] ?? '') !== '"') {
                    $this->fail();
                }
                $k = $this->string();
                $this->ws();
                if (($this->s[$this->i] ?? '') !== ':') {
                    $this->fail();
                }
                $this->i++;
                $v = $this->value($depth + 1);
                $k = self::validUtf8($k); // keys compare as the gateway decodes them
                unset($obj->members[$k]); // the last of duplicate keys wins
                $obj->members[$k] = $v;
                $this->ws();
                $c = $this->s[$this->i] ?? '';
                $this->i++;
                if ($c === '}') {
                    return $obj;
                }
                if ($c !== ',') {
                    $this->i--;
                    $this->fail();
                }
            }
        }
        if ($c === '[') {
            $this->i++;
            $arr = [];
            $this->ws();
            if (($this->s[$this->i] ?? '') === ']') {
                $this->i++;
                return $arr;
            }
            for (;;) {
                $arr[] = $this->value($depth + 1);
                $this->ws();
                $c = $this->s[$this->i] ?? '';
                $this->i++;
                if ($c === ']') {
                    return $arr;
                }
                if ($c !== ',') {
                    $this->i--;
                    $this->fail();
                }
            }
        }
        if ($c === '"') {
            return $this->string();
        }
        // JSON's number grammar: no leading zero, no '+', no bare '.'.
        if (preg_match('/\G-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/', $this->s, $m, 0, $this->i) === 1) {
            $this->i += strlen($m[0]);
            return new RawNumber($m[0]);
        }
        foreach (['true' => true, 'false' => false, 'null' => null] as $lit => $v) {
            if (substr_compare($this->s, $lit, $this->i, strlen($lit)) === 0) {
                $this->i += strlen($lit);
                return $v;
            }
        }
        $this->fail();
    }

    /** Parses the string at the current offset and returns it decoded (UTF-8). */
    private function string(): string
    {
        $this->i++; // "
        $out = '';
        for (;;) {
            $n = strcspn($this->s, "\"\\\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f", $this->i);
            $out .= substr($this->s, $this->i, $n);
            $this->i += $n;
            $c = $this->s[$this->i] ?? '';
            if ($c === '"') {
                $this->i++;
                return $out;
            }
            if ($c !== '\\') {
                $this->fail(); // a control character, or the end
            }
            $e = $this->s[$this->i + 1] ?? '';
            $simple = ['"' => '"', '\\' => '\\', '/' => '/', 'b' => "\x08", 'f' => "\f", 'n' => "\n", 'r' => "\r", 't' => "\t"];
            if (isset($simple[$e])) {
                $out .= $simple[$e];
                $this->i += 2;
                continue;
            }
            $cp = $this->hex4($this->i + 2);
            if ($e !== 'u' || $cp < 0) {
                $this->i++;
                $this->fail();
            }
            $this->i += 6;
            if ($cp >= 0xd800 && $cp <= 0xdfff) {
                // Half a surrogate pair: with its other half right after it,
                // one character; else U+FFFD, as the gateway decodes it.
                $lo = ($this->s[$this->i] ?? '') === '\\' && ($this->s[$this->i + 1] ?? '') === 'u' ? $this->hex4($this->i + 2) : -1;
                if ($cp <= 0xdbff && $lo >= 0xdc00 && $lo <= 0xdfff) {
                    $cp = 0x10000 + (($cp - 0xd800) << 10) + ($lo - 0xdc00);
                    $this->i += 6;
                } else {
                    $cp = 0xfffd;
                }
            }
            $out .= self::utf8($cp);
        }
    }

    /** UTF-8 of a code point, without mbstring (which may not be installed). */
    private static function utf8(int $cp): string
    {
        if ($cp < 0x80) {
            return chr($cp);
        }
        if ($cp < 0x800) {
            return chr(0xc0 | $cp >> 6) . chr(0x80 | $cp & 0x3f);
        }
        if ($cp < 0x10000) {
            return chr(0xe0 | $cp >> 12) . chr(0x80 | $cp >> 6 & 0x3f) . chr(0x80 | $cp & 0x3f);
        }
        return chr(0xf0 | $cp >> 18) . chr(0x80 | $cp >> 12 & 0x3f) . chr(0x80 | $cp >> 6 & 0x3f) . chr(0x80 | $cp & 0x3f);
    }

    private function hex4(int $at): int
    {
        $h = substr($this->s, $at, 4);
        return strlen($h) === 4 && ctype_xdigit($h) ? hexdec($h) : -1;
    }
}
