'use strict';
// The helper's own guarantees: ASCII-only patches, one patch per response
// that holds only what changed, sizes counted as the gateway counts them,
// and a signature check that never throws.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const cs = require('..');

const SECRET = 'a-secret-of-at-least-32-bytes-for-the-tests';

function sessionOf(data, opts) {
  return cs.read({ 'X-Session-Id': 'abc', 'X-Session-New': 'false', 'X-Session-Data': data }, opts);
}

function header(session, name) {
  const found = session.responseHeaders().filter(([n]) => n === name);
  assert.ok(found.length <= 1, `one ${name} at most`);
  return found.length ? found[0][1] : undefined;
}

test('escaping: é, emoji, CJK, U+2028, DEL, controls, lone surrogates', () => {
  const cases = [
    ['é', '"\\u00e9"'],
    ['😀', '"\\ud83d\\ude00"'],
    ['漢字', '"\\u6f22\\u5b57"'],
    ['a\u2028b\u2029c', '"a\\u2028b\\u2029c"'],
    ['\x7f', '"\\u007f"'],
    ['\x00\x1f\t\n\r\b\f', '"\\u0000\\u001f\\t\\n\\r\\b\\f"'],
    ['"\\/<>&\'', '"\\"\\\\/<>&\'"'],
    ['\ud800x', '"\\ufffdx"'], // lone high surrogate: the gateway would store U+FFFD
    ['x\udc00', '"x\\ufffd"'],
    ['\uffff', '"\\uffff"'],
  ];
  for (const [value, want] of cases) {
    const s = sessionOf('{}');
    s.set('v', value);
    const patch = header(s, 'X-Session-Set');
    assert.equal(patch, `{"v":${want}}`);
    assert.match(patch, /^[\x20-\x7e]*$/, 'printable ASCII only');
    // What the app reads back is what the gateway will hold.
    assert.equal(JSON.parse(patch).v, s.get('v'));
  }
});

test('keys sort by code point, as the gateway sorts UTF-8 bytes', () => {
  // UTF-16 order would put U+FFFF after 😀 (surrogates are 0xD8xx): code point order puts it before.
  assert.equal(cs.canonicalJSON({ '😀': 1, '\uffff': 2, 'é': 3, z: 4, A: 5 }),
    '{"A":5,"z":4,"\\u00e9":3,"\\uffff":2,"\\ud83d\\ude00":1}');
  assert.equal(cs.canonicalize('{"\\ud83d\\ude00":1,"\\uffff":2}'), '{"\\uffff":2,"\\ud83d\\ude00":1}');
});

test('canonical JSON: JSON.stringify rules, numbers, refusals', () => {
  assert.equal(cs.canonicalJSON({ d: new Date(0), u: undefined, f() {}, a: [undefined, () => 1] }),
    '{"a":[null,null],"d":"1970-01-01T00:00:00.000Z"}');
  assert.equal(cs.canonicalJSON({ big: 12345678901234567890n, n: -0, x: 1e21 }), '{"big":12345678901234567890,"n":0,"x":1e+21}');
  assert.throws(() => cs.canonicalJSON({ n: NaN }), TypeError);
  assert.throws(() => cs.canonicalJSON({ n: Infinity }), TypeError);
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => cs.canonicalJSON(cyclic), /cyclic/);
  // The same object twice is not a cycle.
  const shared = { a: 1 };
  assert.equal(cs.canonicalJSON({ x: shared, y: shared }), '{"x":{"a":1},"y":{"a":1}}');
  for (const bad of ['', '{', '{"a":01}', '{"a":1,}', "{'a':1}", '{"a":"\x01"}', '{"a":"\\x"}', '{} x', '{"a":+1}', '{"a":.5}', '{"a":-}', 'nul']) {
    assert.throws(() => cs.canonicalize(bad), SyntaxError, JSON.stringify(bad));
  }
  assert.equal(cs.canonicalize(' {"a" : [ 1 , 2 ] , "a":3 } '), '{"a":3}', 'whitespace, and the last duplicate wins');
});

test('one patch per response, holding only what changed', () => {
  const s = sessionOf('{"cart":[1,2],"keep":1,"prefs":{"a":1,"b":2},"user":"alice"}');
  assert.equal(s.patch(), undefined);
  assert.deepEqual(s.responseHeaders(), []);
  s.set('user', 'bob').set('user', 'carol'); // several changes: one patch
  s.set('prefs', { a: 1, c: 3 }); // set replaces: b goes
  s.delete('cart');
  s.set('keep', 1); // unchanged: not sent
  assert.deepEqual(s.responseHeaders(), [['X-Session-Set', '{"cart":null,"prefs":{"b":null,"c":3},"user":"carol"}']]);
  assert.deepEqual(s.data, { keep: 1, prefs: { a: 1, c: 3 }, user: 'carol' });
  // That patch, applied by the gateway, gives exactly the data the app sees.
  assert.equal(cs.applyPatches('{"cart":[1,2],"keep":1,"prefs":{"a":1,"b":2},"user":"alice"}', [s.patch()]), cs.canonicalJSON(s.data));
});

test('update is a merge patch; null deletes; null members are not kept', () => {
  const s = sessionOf('{"o":{"p":1,"q":2},"x":1}');
  s.update({ o: { q: null, r: 3 }, x: null, n: { deep: null, kept: [null] } });
  assert.deepEqual(s.data, { n: { kept: [null] }, o: { p: 1, r: 3 } });
  s.set('x', null);
  assert.equal(s.has('x'), false);
  assert.throws(() => s.set('y', undefined), TypeError);
  assert.throws(() => s.update([1]), TypeError);
  assert.throws(() => s.set(1, 'x'), TypeError);
});

test('data is read-only; changes go through the methods', () => {
  const s = sessionOf('{"a":{"b":1}}');
  assert.throws(() => { s.data.a.b = 2; }, TypeError);
  assert.throws(() => { s.data.c = 2; }, TypeError);
  assert.equal(s.patch(), undefined);
});

test('__proto__ and other odd keys are data, not prototypes', () => {
  const s = sessionOf('{"__proto__":{"polluted":true}}');
  assert.equal({}.polluted, undefined);
  assert.deepEqual(Object.keys(s.data), ['__proto__']);
  s.set('constructor', 1);
  s.update(JSON.parse('{"__proto__":{"more":1}}'));
  assert.equal({}.polluted, undefined);
  assert.equal({}.more, undefined);
  assert.equal(s.patch(), '{"__proto__":{"more":1},"constructor":1}');
});

test('clear, regenerate, expiry: headers and order', () => {
  const s = sessionOf('{"a":1}');
  s.clear();
  assert.deepEqual(s.responseHeaders(), [['X-Session-Clear', 'true']]);
  s.set('b', 2); // after a clear: applied to empty data, so no "a":null needed
  s.regenerate();
  s.setExpiry(1209600);
  assert.deepEqual(s.responseHeaders(), [
    ['X-Session-Clear', 'true'],
    ['X-Session-Regenerate', 'true'],
    ['X-Session-Set', '{"b":2}'],
    ['X-Session-Expiry', '1209600'],
  ]);
  for (const bad of [-1, 1.5, 34560001, '60', NaN]) assert.throws(() => s.setExpiry(bad), RangeError);
  s.setExpiry(0);
  s.setExpiry(34560000);
});

test('session_name gives the header names', () => {
  assert.equal(cs.headerNames('alt_session').set, 'X-Alt-Session-Set');
  assert.equal(cs.headerNames('admin').signature, 'X-Admin-Signature');
  const s = cs.read({ 'x-alt-session-id': 'i', 'x-alt-session-new': 'true', 'x-alt-session-data': '{"a":1}', 'x-session-data': '{"b":1}' }, { sessionName: 'alt_session' });
  assert.deepEqual([s.id, s.isNew, s.data], ['i', true, { a: 1 }]);
  s.set('a', 2);
  assert.deepEqual(s.responseHeaders(), [['X-Alt-Session-Set', '{"a":2}']]);
  assert.throws(() => cs.headerNames('bad name'), TypeError);
});

// Subjects and revoke targets the helpers take and refuse, the same in every language's tests.
let ALL_PRINTABLE = '';
for (let c = 0x21; c <= 0x7e; c++) ALL_PRINTABLE += (c === 0x50 ? ' ' : '') + String.fromCharCode(c);
const GOOD_SUBJECTS = ['42', 'user@example.com', 'a b', '~', 'x'.repeat(cs.MAX_SUBJECT_LENGTH), ALL_PRINTABLE];
const BAD_SUBJECTS = ['', ' 42', '42 ', ' ', '4\t2', 'a\nb', '\x00', '\x7f', 'é', '\ud800', '😀', 'x'.repeat(cs.MAX_SUBJECT_LENGTH + 1)];
const GOOD_TARGETS = ['others', 'all', 'A'.repeat(22), 'abcdefghijklmnopqrstu-', '0123456789_-ABCDEFGHIJ'];
const BAD_TARGETS = ['', 'other', 'Others', 'ALL', ' all', 'others ', 'none', 'A'.repeat(21), 'A'.repeat(23),
  'A'.repeat(21) + '+', 'A'.repeat(21) + '/', 'A'.repeat(20) + '==', 'A'.repeat(21) + 'é', 'A'.repeat(21) + '\n'];

test('login: subject, revoke others, persist, in the order the gateway applies them', () => {
  const s = sessionOf('{"cart":[1]}');
  s.regenerate().set('user', 'alice').setSubject('42').revokeOthers().setPersist(true);
  assert.deepEqual(s.responseHeaders(), [
    ['X-Session-Regenerate', 'true'],
    ['X-Session-Set', '{"user":"alice"}'],
    ['X-Session-Subject', '42'],
    ['X-Session-Persist', 'true'],
    ['X-Session-Revoke', 'others'],
  ]);
  // A later call replaces the subject and the persist choice.
  s.setSubject('43').setPersist(false);
  assert.equal(header(s, 'X-Session-Subject'), '43');
  assert.equal(header(s, 'X-Session-Persist'), 'false');
});

test('subject, revoke, persist: nothing sent when not asked for', () => {
  const s = sessionOf('{"a":1}');
  assert.deepEqual(s.responseHeaders(), []);
  s.regenerate().set('b', 2).setExpiry(3600);
  assert.deepEqual(s.responseHeaders().map(([n]) => n), ['X-Session-Regenerate', 'X-Session-Set', 'X-Session-Expiry']);
});

test('setSubject: printable ASCII, 1 to 256, no outer spaces; removeSubject sends the empty value', () => {
  for (const subject of GOOD_SUBJECTS) {
    assert.deepEqual(sessionOf('{}').setSubject(subject).responseHeaders(), [['X-Session-Subject', subject]], subject);
  }
  for (const subject of BAD_SUBJECTS) {
    const s = sessionOf('{}').setSubject('kept');
    assert.throws(() => s.setSubject(subject), { name: 'RangeError', message: /subject/ }, JSON.stringify(subject));
    assert.deepEqual(s.responseHeaders(), [['X-Session-Subject', 'kept']], 'a refused subject changes nothing');
  }
  for (const wrong of [42, null, undefined, ['42'], Buffer.from('42')]) {
    assert.throws(() => sessionOf('{}').setSubject(wrong), TypeError);
  }
  const s = sessionOf('{"user":"alice"}').removeSubject();
  assert.deepEqual(s.responseHeaders(), [['X-Session-Subject', '']]);
  s.setSubject('42');
  assert.deepEqual(s.responseHeaders(), [['X-Session-Subject', '42']]);
});

test('revoke: others, all or a handle; one target per response', () => {
  for (const target of GOOD_TARGETS) {
    assert.deepEqual(sessionOf('{}').revoke(target).responseHeaders(), [['X-Session-Revoke', target]], target);
  }
  for (const target of BAD_TARGETS) {
    const s = sessionOf('{}');
    assert.throws(() => s.revoke(target), { name: 'RangeError', message: /want "others", "all" or a session handle/ }, JSON.stringify(target));
    assert.deepEqual(s.responseHeaders(), []);
  }
  for (const wrong of [null, undefined, 1, {}]) assert.throws(() => sessionOf('{}').revoke(wrong), TypeError);
  const s = sessionOf('{}').revokeOthers().revoke('others'); // the same again: fine
  for (const other of [() => s.revokeAll(), () => s.revoke('A'.repeat(22))]) {
    assert.throws(other, { name: 'SessionError', code: 'SESSION_REVOKE_CONFLICT', message: /already revokes "others"/ });
  }
  assert.deepEqual(s.responseHeaders(), [['X-Session-Revoke', 'others']], 'the first target stays');
  assert.deepEqual(sessionOf('{"user":"alice"}').revokeAll().responseHeaders(), [['X-Session-Revoke', 'all']]);
});

test('setPersist takes a boolean', () => {
  for (const wrong of [1, 0, 'true', null, undefined]) assert.throws(() => sessionOf('{}').setPersist(wrong), TypeError);
  assert.deepEqual(sessionOf('{}').setPersist(false).responseHeaders(), [['X-Session-Persist', 'false']]);
});

test('clear drops a subject set before it; revoke, persist and regenerate stay', () => {
  const s = sessionOf('{"user":"alice"}');
  s.setSubject('42').setPersist(true).revokeAll().regenerate().clear();
  assert.deepEqual(s.responseHeaders(), [
    ['X-Session-Clear', 'true'],
    ['X-Session-Regenerate', 'true'],
    ['X-Session-Persist', 'true'],
    ['X-Session-Revoke', 'all'],
  ]);
  // A subject set after the clear names the new session's owner.
  s.set('user', 'bob').setSubject('43');
  assert.equal(header(s, 'X-Session-Set'), '{"user":"bob"}');
  assert.equal(header(s, 'X-Session-Subject'), '43');
  s.clear();
  assert.equal(header(s, 'X-Session-Subject'), undefined);
  // removeSubject before a clear is dropped too: the clear removes it anyway.
  assert.deepEqual(sessionOf('{"user":"alice"}').removeSubject().clear().responseHeaders(), [['X-Session-Clear', 'true']]);
});

test('subject, revoke, persist follow session_name', () => {
  const names = cs.headerNames('alt_session');
  assert.deepEqual([names.subject, names.revoke, names.persist], ['X-Alt-Session-Subject', 'X-Alt-Session-Revoke', 'X-Alt-Session-Persist']);
  const s = cs.read({ 'x-alt-session-id': 'i', 'x-alt-session-data': '{}' }, { sessionName: 'alt_session' });
  s.setSubject('42').revokeOthers().setPersist(false);
  assert.deepEqual(s.responseHeaders(), [
    ['X-Alt-Session-Subject', '42'],
    ['X-Alt-Session-Persist', 'false'],
    ['X-Alt-Session-Revoke', 'others'],
  ]);
});

test('read: missing or malformed headers give an empty session, never a throw', () => {
  for (const h of [{}, { 'x-session-data': 'not json' }, { 'x-session-data': '[1]' }, { 'x-session-data': '"s"' }, { 'x-session-data': ['{}', '{}'] }]) {
    const s = cs.read(h);
    assert.deepEqual(s.data, {});
    assert.equal(s.isNew, false);
  }
  assert.equal(cs.read({}).id, null);
  const fetchHeaders = new Headers({ 'X-Session-Id': 'f', 'X-Session-New': 'true', 'X-Session-Data': '{"k":"\\u00e9"}' });
  assert.deepEqual({ ...cs.read(fetchHeaders).data }, { k: 'é' });
});

test('size: exact limit accepted, one byte more refused, nothing changed', () => {
  const s = sessionOf('{"a":"x"}', { maxSize: 30 });
  const room = 30 - '{"a":"x","k":""}'.length;
  s.set('k', 'y'.repeat(room));
  assert.equal(s.size, 30);
  const before = s.patch();
  let err;
  try {
    s.set('k', 'y'.repeat(room + 1));
  } catch (e) {
    err = e;
  }
  assert.equal(err && err.code, 'SESSION_TOO_LARGE');
  assert.equal(err.size, 31);
  assert.equal(err.maxSize, 30);
  assert.equal(s.patch(), before, 'the refused change is not sent');
  assert.equal(s.size, 30);
  // An escape counts as written: é is 6 bytes, not 1 or 2.
  s.set('k', 'y'.repeat(room - 6) + 'é');
  assert.throws(() => s.set('k', 'y'.repeat(room - 5) + 'é'), { code: 'SESSION_TOO_LARGE' });
  // Numbers count as the gateway keeps them: as written.
  const n = cs.read({ 'x-session-data': '{"n":1e3}' }, { maxSize: 9 });
  assert.equal(n.size, 9);
  n.set('other', null); // no change, no growth
  assert.equal(n.patch(), undefined);
});

test('size: data over the limit may shrink, not grow', () => {
  const big = JSON.stringify({ k: 'x'.repeat(30) });
  const s = sessionOf(big, { maxSize: 20 });
  s.set('k', 'x'.repeat(25)); // still over 20, but smaller: allowed
  assert.throws(() => s.set('k', 'x'.repeat(31)), { code: 'SESSION_TOO_LARGE' });
  s.set('k', 'x'.repeat(30)); // back to the size it had: not growing
  s.clear();
  assert.throws(() => s.set('k', 'x'.repeat(20)), { code: 'SESSION_TOO_LARGE' }, 'after a clear the data starts from empty');
});

test('default max_size is 8000', () => {
  const s = sessionOf('{}');
  s.set('k', 'x'.repeat(8000 - '{"k":""}'.length));
  assert.equal(s.size, 8000);
  assert.throws(() => s.set('k', 'x'.repeat(8001 - '{"k":""}'.length)), { code: 'SESSION_TOO_LARGE' });
});

function signed(data, { t = Math.floor(Date.now() / 1000), secret = SECRET, sessionName = 'session', id = '0123456789abcdef0123456789abcdef', isNew = 'false' } = {}) {
  const mac = crypto.createHmac('sha256', secret).update(`${t}.${sessionName}.${id}.${isNew}.${data}`).digest('hex');
  return { 'x-session-id': id, 'x-session-new': isNew, 'x-session-data': data, 'x-session-signature': `t=${t},v2=${mac}` };
}

test('verify: genuine, and the same with one thing wrong', () => {
  const h = signed('{"a":1}');
  assert.equal(cs.verify(h, SECRET), true);
  assert.equal(cs.verify(h, [SECRET]), true);
  assert.equal(cs.verify(h, ['other-secret', SECRET]), true);
  assert.equal(cs.verify(h, 'other-secret'), false);
  assert.equal(cs.verify({ ...h, 'x-session-data': '{"a":2}' }, SECRET), false);
  assert.equal(cs.verify(h, SECRET, { sessionName: 'admin' }), false);
  assert.equal(cs.verify(signed('{}', { t: Math.floor(Date.now() / 1000) - 301 }), SECRET), false);
  assert.equal(cs.verify(signed('{}', { t: Math.floor(Date.now() / 1000) - 301 }), SECRET, { maxAge: 400 }), true);
});

test('verify: hostile input is false, never a throw', () => {
  const h = signed('{"a":1}');
  const sig = h['x-session-signature'];
  const hostile = [
    undefined, null, 42, 'string', [], new Map(), Object.create(null),
    { ...h, 'x-session-signature': undefined },
    { ...h, 'x-session-signature': '' },
    { ...h, 'x-session-signature': [sig, sig] },
    { ...h, 'x-session-signature': sig + ',t=1' },
    { ...h, 'x-session-signature': sig + ',v2=' + '0'.repeat(64) },
    { ...h, 'x-session-signature': sig.replace('t=', 't=+') },
    { ...h, 'x-session-signature': sig.replace('t=', 't=1e9') },
    { ...h, 'x-session-signature': sig.replace('t=', 't= ') },
    { ...h, 'x-session-signature': sig.replace(',', ', ') },
    { ...h, 'x-session-signature': sig + 'ff' },
    { ...h, 'x-session-signature': sig.slice(0, -1) + '\u0100' },
    { ...h, 'x-session-signature': 'x'.repeat(100000) },
    { ...h, 'x-session-signature': ',,,' },
    { ...h, 'x-session-signature': '=,=' },
    { ...h, 'x-session-signature': 't=99999999999999999999,v2=' + '0'.repeat(64) },
    { ...h, 'x-session-signature': { toString: () => sig } },
    { ...h, 'x-session-data': '{"a":1}\u00e9' },
    { ...h, 'X-Session-Signature': sig }, // the same name twice, two spellings
    { ...h, 'x-session-id': undefined },
    { headers: null },
    { headers: { get() { throw new Error('boom'); } } },
  ];
  for (const [i, x] of hostile.entries()) {
    assert.equal(cs.verify(x, SECRET), false, `case ${i}`);
  }
  for (const secrets of [undefined, null, '', [], [''], [null], 42, [{}]]) {
    assert.equal(cs.verify(h, secrets), false, `secrets ${JSON.stringify(secrets)}`);
  }
  for (const opts of [{ now: NaN }, { now: 'soon' }, { maxAge: NaN }, { maxAge: -1 }, { sessionName: 'bad name' }, { sessionName: 7 }]) {
    assert.equal(cs.verify(h, SECRET, opts), false, JSON.stringify(opts));
  }
  // A getter that throws, in place of a header map.
  const trap = new Proxy({}, { ownKeys() { throw new Error('trap'); } });
  assert.equal(cs.verify(trap, SECRET), false);
});

test('changes after the head went out throw rather than vanish', () => {
  const s = sessionOf('{}');
  s.markSent();
  assert.throws(() => s.set('a', 1), { code: 'SESSION_HEADERS_SENT' });
  assert.throws(() => s.clear(), { code: 'SESSION_HEADERS_SENT' });
  for (const late of [() => s.setSubject('42'), () => s.removeSubject(), () => s.revoke('others'), () => s.revokeOthers(), () => s.revokeAll(), () => s.setPersist(true)]) {
    assert.throws(late, { code: 'SESSION_HEADERS_SENT' });
  }
  assert.deepEqual(s.responseHeaders(), []);
});

test('ESM entry point exports the same API', async () => {
  const esm = await import('../index.mjs');
  assert.equal(esm.verify, cs.verify);
  assert.equal(esm.middleware, cs.middleware);
  assert.equal(esm.default, cs);
  assert.equal(esm.MAX_SUBJECT_LENGTH, 256);
  assert.equal(esm.HANDLE_LENGTH, 22);
});
