'use strict';
// caddy-session helper for Node: reads the session the gateway hands over in
// request headers, checks X-Session-Signature, and turns the app's changes
// into the response headers the gateway applies (and removes).
//
// No dependencies. Data is handled in the gateway's canonical JSON form
// (compact, keys sorted by code point, every character outside printable
// ASCII as a lowercase \u escape) so that sizes are counted exactly as the
// gateway counts them, and every header value written is ASCII: Node's
// setHeader throws ERR_INVALID_CHAR on anything else, and the gateway
// refuses an X-Session-Set that is not valid UTF-8.

const crypto = require('node:crypto');

const DEFAULT_MAX_SIZE = 8000; // bytes of canonical JSON, the gateway's default max_size
const DEFAULT_MAX_AGE = 300; // seconds a signature stays acceptable either way
const MAX_EXPIRY = 34560000; // 400 days, the gateway's bound on X-Session-Expiry
const MAX_SUBJECT_LENGTH = 256; // bytes of printable ASCII, the gateway's bound on X-Session-Subject
const HANDLE_LENGTH = 22; // characters of base64url in a session's handle (X-Session-Revoke)
const HANDLE = /^[A-Za-z0-9_-]{22}$/;
const MAX_DEPTH = 1000; // nesting the parser accepts; data under max_size never comes close

// ---------------------------------------------------------------------------
// Header names

// headerNames returns the header names for a session_name the way the
// gateway derives them: "session" gives X-Session-*, "alt_session" gives
// X-Alt-Session-*.
function headerNames(sessionName = 'session') {
  if (typeof sessionName !== 'string' || !/^[A-Za-z0-9_-]+$/.test(sessionName)) {
    throw new TypeError(`caddy-session: invalid sessionName ${JSON.stringify(sessionName)}`);
  }
  const prefix = ('x-' + sessionName.replace(/_/g, '-') + '-')
    .split('-')
    .map((w) => (w ? w[0].toUpperCase() + w.slice(1).toLowerCase() : w))
    .join('-');
  return {
    id: prefix + 'Id',
    data: prefix + 'Data',
    isNew: prefix + 'New',
    signature: prefix + 'Signature',
    set: prefix + 'Set',
    clear: prefix + 'Clear',
    regenerate: prefix + 'Regenerate',
    expiry: prefix + 'Expiry',
    subject: prefix + 'Subject',
    revoke: prefix + 'Revoke',
    persist: prefix + 'Persist',
  };
}

// getHeader reads one header from a Node request, a plain object of
// headers (any case), a fetch Headers or a Map. It returns undefined when the
// header is absent or sent more than once: a duplicated session header did
// not come from the gateway, which sends each exactly once.
function getHeader(source, name) {
  if (source == null) return undefined;
  if (typeof source === 'object' && source.headers && typeof source.headers === 'object' && !(source instanceof Map)) {
    source = source.headers; // an IncomingMessage or any request-like object
  }
  let value;
  if (typeof source.get === 'function' && !(source instanceof Map)) {
    value = source.get(name); // fetch Headers: case-insensitive already
    if (value === null) value = undefined;
  } else {
    const lower = name.toLowerCase();
    const entries = source instanceof Map ? source.entries() : Object.entries(source);
    for (const [k, v] of entries) {
      if (typeof k === 'string' && k.toLowerCase() === lower) {
        if (value !== undefined) return undefined; // two spellings of one name
        value = v;
      }
    }
  }
  if (Array.isArray(value)) value = value.length === 1 ? value[0] : undefined;
  return typeof value === 'string' ? value : undefined;
}

// ---------------------------------------------------------------------------
// Canonical JSON
//
// Session data is kept as a "raw" tree, parsed the way the gateway parses it:
// numbers keep the exact text they were written with (1e3 stays 1e3, a
// 20-digit integer stays exact), objects are RawObjects (a Map, so no key,
// "__proto__" included, touches a prototype), strings are JS strings,
// true/false/null are themselves, arrays are arrays.

class RawNumber {
  constructor(text) {
    this.text = text;
  }
}

class RawObject {
  constructor(entries) {
    this.map = new Map(entries);
  }
}

// quote writes s as a canonical JSON string: printable ASCII as itself, the
// short escapes JSON has, and every other UTF-16 code unit as a lowercase \u
// escape, so characters above the BMP come out as the surrogate pair a JS
// string already holds. A lone surrogate cannot be stored as UTF-8: the
// gateway would make it U+FFFD, so it is written as \ufffd here.
function quote(s) {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    switch (c) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x08: out += '\\b'; break;
      case 0x0c: out += '\\f'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
      default:
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
          const d = s.charCodeAt(i + 1);
          if (d >= 0xdc00 && d <= 0xdfff) {
            out += u4(c) + u4(d);
            i++;
            break;
          }
        }
        out += c >= 0xd800 && c <= 0xdfff ? '\\ufffd' : u4(c);
    }
    start = i + 1;
  }
  return out + s.slice(start) + '"';
}

function u4(c) {
  return '\\u' + c.toString(16).padStart(4, '0');
}

// wellFormed replaces lone surrogates by U+FFFD, as the gateway's decoding
// does; keys are compared in that form.
function wellFormed(s) {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

// compareKeys orders keys by code point, which is the gateway's order (it
// sorts UTF-8 bytes, and UTF-8 keeps code point order). JS compares UTF-16
// code units, which puts U+E000..U+FFFF after characters above the BMP: the
// surrogate units are moved above them here.
function compareKeys(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

// encodeRaw writes a raw tree in canonical form.
function encodeRaw(v) {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'string') return quote(v);
  if (v instanceof RawNumber) return v.text;
  if (Array.isArray(v)) return '[' + v.map(encodeRaw).join(',') + ']';
  if (v instanceof RawObject) {
    const keys = [...v.map.keys()].sort(compareKeys);
    return '{' + keys.map((k) => quote(k) + ':' + encodeRaw(v.map.get(k))).join(',') + '}';
  }
  throw new TypeError('caddy-session: not a raw JSON value');
}

// NUMBER is JSON's number grammar: no leading zero, no '+', no bare '.'.
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

// parseRaw parses JSON text (RFC 8259, as strict as the gateway) into a raw
// tree. Duplicate keys: the last one wins, as in the gateway.
function parseRaw(text) {
  if (typeof text !== 'string') throw new TypeError('caddy-session: JSON text must be a string');
  let i = 0;
  const fail = () => {
    throw new SyntaxError(`caddy-session: invalid JSON at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text[i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else break;
    }
  };
  const str = () => {
    i++; // opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return wellFormed(out);
      }
      if (c < 0x20) fail();
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text[i + 1];
      const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
        out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
      } else {
        i++;
        fail();
      }
      start = i;
    }
  };
  const value = (depth) => {
    if (depth > MAX_DEPTH) fail();
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = new RawObject();
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const k = str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        const v = value(depth + 1);
        obj.map.delete(k); // the last of duplicate keys wins
        obj.map.set(k, v);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return obj;
        } else fail();
      }
    }
    if (c === '[') {
      i++;
      const arr = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return arr;
        } else fail();
      }
    }
    if (c === '"') return str();
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m) {
      i += m[0].length;
      return new RawNumber(m[0]);
    }
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    return fail();
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail();
  return v;
}

// toRaw turns an app's value into a raw tree, with the rules of
// JSON.stringify (toJSON, undefined/functions/symbols left out of objects and
// written as null in arrays) except that a BigInt is written exactly and a
// number that is not finite is refused rather than quietly made null.
function toRaw(v, key = '', seen = new Set()) {
  if (v !== null && typeof v === 'object' && typeof v.toJSON === 'function') v = v.toJSON(key);
  switch (typeof v) {
    case 'string':
      return wellFormed(v);
    case 'boolean':
      return v;
    case 'bigint':
      return new RawNumber(v.toString());
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`caddy-session: ${v} cannot be stored in JSON`);
      return new RawNumber(JSON.stringify(v));
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (v === null) return null;
  if (v instanceof RawNumber) return v;
  if (seen.has(v)) throw new TypeError('caddy-session: cyclic value cannot be stored in JSON');
  seen.add(v);
  try {
    if (v instanceof RawObject) {
      return new RawObject([...v.map].map(([k, x]) => [k, toRaw(x, k, seen)]));
    }
    if (Array.isArray(v)) {
      return v.map((x, idx) => {
        const r = toRaw(x, String(idx), seen);
        return r === undefined ? null : r;
      });
    }
    if (v instanceof Number || v instanceof String || v instanceof Boolean) return toRaw(v.valueOf(), key, seen);
    const obj = new RawObject();
    for (const k of Object.keys(v)) {
      const r = toRaw(v[k], k, seen);
      if (r === undefined) continue;
      const wk = wellFormed(k);
      obj.map.delete(wk);
      obj.map.set(wk, r);
    }
    return obj;
  } finally {
    seen.delete(v);
  }
}

// canonicalJSON returns the canonical JSON of an app's value: the form the
// gateway stores, ASCII only, safe in any header.
function canonicalJSON(value) {
  const r = toRaw(value);
  if (r === undefined) throw new TypeError('caddy-session: value cannot be stored in JSON');
  return encodeRaw(r);
}

// canonicalize returns JSON text in canonical form, numbers as written.
function canonicalize(text) {
  return encodeRaw(parseRaw(text));
}

const isObj = (v) => v instanceof RawObject;

// mergeRaw applies merge patch `patch` to `target` (RFC 7396, section 2)
// and returns the result, leaving both as they were.
function mergeRaw(target, patch) {
  if (!isObj(patch)) return patch;
  const out = new RawObject(isObj(target) ? target.map : []);
  for (const [k, v] of patch.map) {
    if (v === null) out.map.delete(k);
    else out.map.set(k, mergeRaw(out.map.get(k), v));
  }
  return out;
}

// withoutNullMembers drops null members of objects, at every level: the
// gateway's merge drops them, so a value holding them is stored without.
function withoutNullMembers(v) {
  if (Array.isArray(v)) return v.map(withoutNullMembers);
  if (!isObj(v)) return v;
  const out = new RawObject();
  for (const [k, x] of v.map) if (x !== null) out.map.set(k, withoutNullMembers(x));
  return out;
}

// diffRaw returns the merge patch that turns object `base` into object
// `next` (next holds no null members: see withoutNullMembers). Only what
// changed is in it, so concurrent requests changing other keys of the same
// session lose nothing.
function diffRaw(base, next) {
  const patch = new RawObject();
  for (const k of base.map.keys()) if (!next.map.has(k)) patch.map.set(k, null);
  for (const [k, v] of next.map) {
    const old = base.map.get(k);
    if (isObj(old) && isObj(v)) {
      const sub = diffRaw(old, v);
      if (sub.map.size > 0) patch.map.set(k, sub);
    } else if (old === undefined || encodeRaw(old) !== encodeRaw(v)) {
      patch.map.set(k, v);
    }
  }
  return patch;
}

// applyPatches applies merge patches, JSON texts, in order to data, a JSON
// object's text ("" for none), and returns the result in canonical form:
// what the gateway stores.
function applyPatches(data, patches) {
  let obj = data === '' ? new RawObject() : parseRaw(data);
  if (!isObj(obj)) throw new TypeError('caddy-session: data is not a JSON object');
  for (const p of patches) {
    const patch = parseRaw(p);
    if (!isObj(patch)) throw new TypeError('caddy-session: a patch is not a JSON object');
    obj = mergeRaw(obj, patch);
  }
  return encodeRaw(obj);
}

// overSize says whether the gateway refuses result (canonical JSON) in place
// of current: it passes the limit and grows the data. Data already over a
// lowered limit may still shrink.
function overSize(result, current, limit) {
  return limit > 0 && result.length > limit && result.length > current.length;
}

function deepFreeze(v) {
  if (v !== null && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

// ---------------------------------------------------------------------------
// Signature

const SIG_HEX = /^[0-9a-f]{64}$/;
const ASCII = /^[\x20-\x7e]*$/;

// verify reports whether the session headers came from the gateway: their
// X-Session-Signature (t=<unix seconds>,v2=<hex>) is an HMAC-SHA256 under one
// of secrets of t.session_name.id.new.data, and t is within maxAge seconds
// of now (either way). It never throws: anything missing, empty, malformed,
// non-ASCII, stale or wrong is false.
function verify(headers, secrets, { maxAge = DEFAULT_MAX_AGE, now, sessionName = 'session' } = {}) {
  try {
    const names = headerNames(sessionName);
    const sig = getHeader(headers, names.signature);
    const id = getHeader(headers, names.id);
    const isNew = getHeader(headers, names.isNew);
    const data = getHeader(headers, names.data);
    if (!sig || id === undefined || isNew === undefined || data === undefined) return false;
    // Canonical data is ASCII, and so is all the gateway signs: anything
    // else did not come from it (and would hash differently as UTF-8 than
    // the latin1 Node's parser decodes header bytes as).
    for (const v of [sig, id, isNew, data]) if (!ASCII.test(v)) return false;

    let t;
    let mac;
    for (const part of sig.split(',')) {
      const eq = part.indexOf('=');
      if (eq <= 0) return false;
      const k = part.slice(0, eq);
      const v = part.slice(eq + 1);
      if (k === 't') {
        if (t !== undefined || !/^[0-9]{1,15}$/.test(v)) return false;
        t = v;
      } else if (k === 'v2') {
        if (mac !== undefined || !SIG_HEX.test(v)) return false;
        mac = v;
      } // other keys: room for later versions, never trusted
    }
    if (t === undefined || mac === undefined) return false;

    const clock = now === undefined ? Date.now() / 1000 : Number(now);
    if (!Number.isFinite(clock) || !(Math.abs(clock - Number(t)) <= Number(maxAge))) return false;

    const given = Buffer.from(mac, 'hex');
    const message = Buffer.from(`${t}.${sessionName}.${id}.${isNew}.${data}`, 'latin1');
    const list = Array.isArray(secrets) ? secrets : [secrets];
    let ok = false;
    for (const secret of list) {
      if (!(typeof secret === 'string' || Buffer.isBuffer(secret)) || secret.length === 0) continue;
      const want = crypto.createHmac('sha256', secret).update(message).digest();
      // Both are 32 bytes: timingSafeEqual needs equal lengths, and the hex
      // check above guarantees them. Every secret is tried, match or not.
      if (crypto.timingSafeEqual(want, given)) ok = true;
    }
    return ok;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Session

class SessionError extends Error {
  constructor(code, message, extra) {
    super(message);
    this.name = 'SessionError';
    this.code = code;
    Object.assign(this, extra);
  }
}

// Session is one request's session: what the gateway sent, and the changes
// the app makes, which go back as one merge patch in the response headers.
class Session {
  constructor({ id, isNew, dataText, sessionName = 'session', maxSize = DEFAULT_MAX_SIZE }) {
    this.names = headerNames(sessionName);
    this.sessionName = sessionName;
    this.id = id;
    this.isNew = isNew;
    this.verified = false;
    this.maxSize = maxSize;
    let base;
    try {
      base = dataText === undefined ? new RawObject() : parseRaw(dataText);
    } catch {
      base = undefined;
    }
    if (!isObj(base)) base = new RawObject(); // not from the gateway: start empty
    this._base = base;
    this._baseText = encodeRaw(base);
    this._current = base;
    this._view = undefined;
    this._cleared = false;
    this._regenerate = false;
    this._expiry = undefined;
    this._subject = undefined; // '' removes it
    this._revoke = undefined;
    this._persist = undefined;
    this._sent = false;
  }

  // data is the session as the app left it so far, read-only (frozen):
  // change it with set/update/delete/clear.
  get data() {
    if (this._view === undefined) this._view = deepFreeze(JSON.parse(encodeRaw(this._current)));
    return this._view;
  }

  get(key) {
    return this.data[key];
  }

  has(key) {
    return Object.prototype.hasOwnProperty.call(this.data, key);
  }

  // set stores value under key, replacing what was there (nested objects
  // included). null deletes the key. Null members of objects are not kept.
  set(key, value) {
    if (typeof key !== 'string') throw new TypeError('caddy-session: a key must be a string');
    if (value === undefined) throw new TypeError(`caddy-session: set(${JSON.stringify(key)}, undefined): use delete()`);
    const raw = toRaw(value, key);
    if (raw === undefined) throw new TypeError('caddy-session: value cannot be stored in JSON');
    const next = new RawObject(this._current.map);
    const k = wellFormed(key);
    if (raw === null) next.map.delete(k);
    else next.map.set(k, withoutNullMembers(raw));
    this._change(next);
    return this;
  }

  // update applies a JSON merge patch (RFC 7396) to the data.
  update(patch) {
    const raw = toRaw(patch);
    if (!isObj(raw)) throw new TypeError('caddy-session: update() takes an object');
    this._change(mergeRaw(this._current, raw));
    return this;
  }

  delete(key) {
    if (!this._current.map.has(wellFormed(String(key)))) return this;
    const next = new RawObject(this._current.map);
    next.map.delete(wellFormed(String(key)));
    this._change(next);
    return this;
  }

  // clear empties the session: the gateway deletes it and its cookie, and
  // its subject. Data set afterwards in the same response starts a session
  // under a new ID. A subject set before is dropped (set it again after
  // clear() for the new session); regenerate, setExpiry, setPersist and
  // revoke stay.
  clear() {
    this._assertOpen();
    this._cleared = true;
    this._current = new RawObject();
    this._view = undefined;
    this._subject = undefined;
    return this;
  }

  // regenerate gives the session a new ID, its data kept (after a login).
  regenerate() {
    this._assertOpen();
    this._regenerate = true;
    return this;
  }

  // setExpiry gives this session its own idle expiry in seconds (0:
  // permanent), up to 400 days.
  setExpiry(seconds) {
    this._assertOpen();
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_EXPIRY) {
      throw new RangeError(`caddy-session: expiry must be whole seconds from 0 to ${MAX_EXPIRY}`);
    }
    this._expiry = seconds;
    return this;
  }

  // setSubject names the session's owner (X-Session-Subject), typically the
  // user's ID, which the gateway keeps beside the session (not in the data)
  // to find the user's sessions: to list them, and for revokeOthers and
  // revokeAll. Send it with the data that logs the user in (and
  // regenerate): the gateway keeps a subject only for a session that has
  // data. A string of printable ASCII (' ' to '~'), 1 to 256 characters,
  // without a leading or trailing space; anything else throws (TypeError for
  // a non-string, such as a numeric ID: pass String(user.id); RangeError
  // for a bad value) and changes nothing. removeSubject removes it.
  setSubject(subject) {
    this._assertOpen();
    if (typeof subject !== 'string') {
      throw new TypeError(`caddy-session: a subject is a string, not ${subject === null ? 'null' : typeof subject}`);
    }
    if (subject === '') throw new RangeError('caddy-session: the subject is empty: removeSubject() removes the subject');
    if (subject.length > MAX_SUBJECT_LENGTH) {
      throw new RangeError(`caddy-session: the subject is ${subject.length} characters, more than ${MAX_SUBJECT_LENGTH}`);
    }
    if (subject[0] === ' ' || subject[subject.length - 1] === ' ') {
      throw new RangeError('caddy-session: the subject has a leading or trailing space');
    }
    const bad = subject.search(/[^\x20-\x7e]/);
    if (bad >= 0) {
      throw new RangeError(`caddy-session: the subject has U+${subject.charCodeAt(bad).toString(16).toUpperCase().padStart(4, '0')} at ${bad}: only printable ASCII (0x20 to 0x7E) is allowed`);
    }
    this._subject = subject;
    return this;
  }

  // removeSubject removes the session's subject (an empty
  // X-Session-Subject): the session no longer counts among its owner's.
  // clear() removes it too.
  removeSubject() {
    this._assertOpen();
    this._subject = '';
    return this;
  }

  // revoke ends sessions of this session's subject (X-Session-Revoke), after
  // the response's other changes: target is 'others' (every other session
  // of the subject: revokeOthers), 'all' (every one, this one included:
  // revokeAll) or a session's handle, 22 characters of base64url as the
  // gateway lists the subject's sessions (that session, if it is the
  // subject's). A response carries one target: another one after the first
  // throws a SessionError SESSION_REVOKE_CONFLICT (the first stays), the
  // same one again does not. Anything else throws (TypeError, RangeError)
  // and changes nothing.
  revoke(target) {
    this._assertOpen();
    if (typeof target !== 'string') {
      throw new TypeError(`caddy-session: a revoke target is a string, not ${target === null ? 'null' : typeof target}`);
    }
    if (target !== 'others' && target !== 'all' && !HANDLE.test(target)) {
      throw new RangeError(`caddy-session: revoke ${JSON.stringify(target.slice(0, 40))}: want "others", "all" or a session handle (${HANDLE_LENGTH} characters of base64url)`);
    }
    if (this._revoke !== undefined && this._revoke !== target) {
      throw new SessionError(
        'SESSION_REVOKE_CONFLICT',
        `caddy-session: revoke ${JSON.stringify(target)}: this response already revokes ${JSON.stringify(this._revoke)}, and carries one revoke`,
      );
    }
    this._revoke = target;
    return this;
  }

  // revokeOthers ends every other session of this session's subject: "sign
  // out other devices", after a password change say. At a login, send it
  // with setSubject (and regenerate): this session stays.
  revokeOthers() {
    return this.revoke('others');
  }

  // revokeAll ends every session of this session's subject, this one
  // included ("sign out everywhere"): the gateway deletes this response's
  // cookie.
  revokeAll() {
    return this.revoke('all');
  }

  // setPersist chooses this session's cookie (X-Session-Persist), a
  // "remember me": true makes it persistent (with a Max-Age, as the
  // gateway's expiry or setExpiry gives it), false a browser-session cookie
  // (without), whatever the gateway's sessioncookie says. The gateway keeps
  // the choice for the session, across renewals and regenerates. Anything
  // but a boolean throws a TypeError.
  setPersist(persist) {
    this._assertOpen();
    if (typeof persist !== 'boolean') throw new TypeError('caddy-session: persist is true or false');
    this._persist = persist;
    return this;
  }

  // size is the canonical JSON byte length of the data as the app left it.
  get size() {
    return encodeRaw(this._current).length;
  }

  // patch returns the merge patch the response carries, canonical JSON, or
  // undefined when the data did not change.
  patch() {
    const p = diffRaw(this._cleared ? new RawObject() : this._base, this._current);
    return p.map.size === 0 ? undefined : encodeRaw(p);
  }

  // responseHeaders returns the [name, value] pairs to send, ASCII only, in
  // the order the gateway applies them (it orders them itself anyway).
  responseHeaders() {
    const out = [];
    if (this._cleared) out.push([this.names.clear, 'true']);
    if (this._regenerate) out.push([this.names.regenerate, 'true']);
    const p = this.patch();
    if (p !== undefined) out.push([this.names.set, p]);
    if (this._expiry !== undefined) out.push([this.names.expiry, String(this._expiry)]);
    if (this._subject !== undefined) out.push([this.names.subject, this._subject]);
    if (this._persist !== undefined) out.push([this.names.persist, String(this._persist)]);
    if (this._revoke !== undefined) out.push([this.names.revoke, this._revoke]);
    return out;
  }

  // markSent records that the headers went out: later changes could not
  // reach the gateway, so they throw instead of being lost quietly.
  markSent() {
    this._sent = true;
  }

  _assertOpen() {
    if (this._sent) {
      throw new SessionError('SESSION_HEADERS_SENT', 'caddy-session: the response headers were already sent; this change would be lost');
    }
  }

  // _change makes next the data, unless the gateway would refuse it for
  // size: then it throws and nothing changes.
  _change(next) {
    this._assertOpen();
    const text = encodeRaw(next);
    const current = this._cleared ? '{}' : this._baseText;
    if (overSize(text, current, this.maxSize)) {
      throw new SessionError(
        'SESSION_TOO_LARGE',
        `caddy-session: the session would be ${text.length} bytes of JSON, over max_size ${this.maxSize}`,
        { size: text.length, maxSize: this.maxSize },
      );
    }
    this._current = next;
    this._view = undefined;
  }
}

// read returns the session of a request (or of its headers).
function read(source, { sessionName = 'session', maxSize = DEFAULT_MAX_SIZE } = {}) {
  const names = headerNames(sessionName);
  const id = getHeader(source, names.id);
  return new Session({
    id: id === undefined ? null : id,
    isNew: getHeader(source, names.isNew) === 'true',
    dataText: getHeader(source, names.data),
    sessionName,
    maxSize,
  });
}

// ---------------------------------------------------------------------------
// Glue for node:http and Connect/Express

// appendHeader adds a header, keeping any value of the same name already set
// (res.setHeader alone would replace it).
function appendHeader(res, name, value) {
  const prev = res.getHeader(name);
  if (prev === undefined) res.setHeader(name, value);
  else res.setHeader(name, [].concat(prev, value));
}

// attach reads the session of req, checks its signature when secrets are
// given (session.verified), puts it on req.caddySession, and makes res send
// the session's headers just before its head goes out, however that
// happens: res.writeHead, or the implicit head of res.write/res.end (which
// Node sends through res.writeHead too).
function attach(req, res, opts = {}) {
  const session = read(req, opts);
  if (opts.secrets !== undefined) {
    session.verified = verify(req, opts.secrets, { maxAge: opts.maxAge, sessionName: opts.sessionName });
  }
  req.caddySession = session;
  const writeHead = res.writeHead;
  res.writeHead = function writeHeadWithSession(...args) {
    if (!session._sent && !res.headersSent) {
      session.markSent();
      for (const [name, value] of session.responseHeaders()) appendHeader(res, name, value);
    }
    return writeHead.apply(this, args);
  };
  return session;
}

// withSession wraps a plain node:http handler: handler(req, res, session).
function withSession(handler, opts = {}) {
  return function sessionHandler(req, res) {
    const session = attach(req, res, opts);
    if (opts.requireSignature && !session.verified) return refuse(res);
    return handler(req, res, session);
  };
}

// middleware is Connect/Express middleware: the session on req.caddySession.
// Options: secrets (string or list: sets session.verified), maxAge,
// sessionName, maxSize, requireSignature (answer 401 to requests whose
// session headers are not verified).
function middleware(opts = {}) {
  if (opts.requireSignature && opts.secrets === undefined) {
    throw new TypeError('caddy-session: requireSignature needs secrets');
  }
  return function caddySession(req, res, next) {
    const session = attach(req, res, opts);
    if (opts.requireSignature && !session.verified) return refuse(res);
    return next();
  };
}

function refuse(res) {
  res.statusCode = 401;
  res.setHeader('Content-Type', 'application/json');
  res.end('{"error":"session headers not verified"}');
}

module.exports = {
  DEFAULT_MAX_SIZE,
  DEFAULT_MAX_AGE,
  MAX_EXPIRY,
  MAX_SUBJECT_LENGTH,
  HANDLE_LENGTH,
  Session,
  SessionError,
  read,
  verify,
  attach,
  withSession,
  middleware,
  headerNames,
  canonicalJSON,
  canonicalize,
  applyPatches,
  overSize,
  // the raw tree, for tests and for other glue
  parseRaw,
  encodeRaw,
};
