'use strict';
// The glue over a real node:http server on 127.0.0.1: the session's headers
// go out with the response head however the app sends it.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const crypto = require('node:crypto');
const cs = require('..');

const SECRET = 'a-secret-of-at-least-32-bytes-for-the-tests';

// serve runs handler on a fresh server on a free loopback port, sends one
// request, and returns the response's status, headers (raw, names as sent)
// and body.
async function serve(handler, { method = 'GET', path = '/', headers = {} } = {}) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address();
    return await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          const raw = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) raw.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
          resolve({ status: res.statusCode, raw, body });
        });
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const sessionHeaders = (raw) => raw.filter(([n]) => /^x-session-/i.test(n));

function signed(data) {
  const t = Math.floor(Date.now() / 1000);
  const id = '0123456789abcdef0123456789abcdef';
  const mac = crypto.createHmac('sha256', SECRET).update(`${t}.session.${id}.false.${data}`).digest('hex');
  return { 'X-Session-Id': id, 'X-Session-New': 'false', 'X-Session-Data': data, 'X-Session-Signature': `t=${t},v2=${mac}` };
}

test('withSession: non-ASCII values go out as one ASCII patch (res.end, implicit head)', async () => {
  const res = await serve(cs.withSession((req, res, session) => {
    session.set('e', 'é').set('emoji', '😀').set('cjk', '漢字').set('sep', '\u2028');
    res.end('ok'); // no writeHead: Node sends the head implicitly
  }), { headers: { 'X-Session-Id': 'i', 'X-Session-New': 'true', 'X-Session-Data': '{}' } });
  assert.equal(res.status, 200);
  assert.deepEqual(sessionHeaders(res.raw), [
    ['X-Session-Set', '{"cjk":"\\u6f22\\u5b57","e":"\\u00e9","emoji":"\\ud83d\\ude00","sep":"\\u2028"}'],
  ]);
});

test('middleware: explicit writeHead with headers, an app header kept, verified', async () => {
  const mw = cs.middleware({ secrets: [SECRET] });
  let seen;
  const res = await serve((req, res) => {
    mw(req, res, () => {
      const s = req.caddySession;
      seen = { id: s.id, isNew: s.isNew, data: s.data, verified: s.verified };
      s.set('counter', (s.get('counter') || 0) + 1);
      s.regenerate();
      res.setHeader('X-Session-Set', '{"by":"hand"}'); // set by the app itself: kept
      res.writeHead(201, { 'Content-Type': 'text/plain' });
      res.end();
    });
  }, { method: 'POST', headers: signed('{"counter":2}') });
  assert.equal(res.status, 201);
  assert.deepEqual(seen, { id: '0123456789abcdef0123456789abcdef', isNew: false, data: { counter: 2 }, verified: true });
  assert.deepEqual(sessionHeaders(res.raw), [
    ['X-Session-Set', '{"by":"hand"}'],
    ['X-Session-Set', '{"counter":3}'],
    ['X-Session-Regenerate', 'true'],
  ]);
});

test('middleware: forged signature is not verified; requireSignature answers 401', async () => {
  const forged = { ...signed('{"user":"alice"}'), 'X-Session-Data': '{"user":"admin"}' };
  let verified;
  await serve((req, res) => cs.middleware({ secrets: SECRET })(req, res, () => {
    verified = req.caddySession.verified;
    res.end();
  }), { headers: forged });
  assert.equal(verified, false);

  let reached = false;
  const strict = cs.middleware({ secrets: SECRET, requireSignature: true });
  const res = await serve((req, res) => strict(req, res, () => {
    reached = true;
    res.end();
  }), { headers: forged });
  assert.equal(res.status, 401);
  assert.equal(reached, false);
  assert.deepEqual(sessionHeaders(res.raw), []);
});

test('an unchanged session sends nothing; a refused change sends nothing', async () => {
  const res = await serve(cs.withSession((req, res, session) => {
    try {
      session.set('k', 'x'.repeat(9000));
    } catch (e) {
      res.statusCode = e.code === 'SESSION_TOO_LARGE' ? 413 : 500;
    }
    res.end();
  }), { headers: { 'X-Session-Data': '{"a":1}' } });
  assert.equal(res.status, 413);
  assert.deepEqual(sessionHeaders(res.raw), []);
});

test('a change after the head went out throws SESSION_HEADERS_SENT', async () => {
  let err;
  await serve(cs.withSession((req, res, session) => {
    res.write('streaming');
    try {
      session.set('late', 1);
    } catch (e) {
      err = e;
    }
    res.end();
  }));
  assert.equal(err && err.code, 'SESSION_HEADERS_SENT');
});

test('clear and expiry reach the head of a flushed response', async () => {
  const res = await serve(cs.withSession((req, res, session) => {
    session.clear().setExpiry(60);
    res.flushHeaders();
    res.end('x');
  }), { headers: { 'X-Session-Data': '{"a":1}' } });
  assert.deepEqual(sessionHeaders(res.raw), [['X-Session-Clear', 'true'], ['X-Session-Expiry', '60']]);
});

test('subject, revoke and persist reach the head; an empty subject as an empty value', async () => {
  const mw = cs.middleware({ sessionName: 'alt_session' });
  const app = (req, res) => mw(req, res, () => {
    const s = req.caddySession;
    if (req.url === '/login') s.regenerate().set('user', 'alice').setSubject('42').revokeOthers().setPersist(true);
    if (req.url === '/forget') s.removeSubject();
    if (req.url === '/everywhere') s.revokeAll();
    res.end('ok');
  });
  const alt = (raw) => raw.filter(([n]) => /^x-alt-session-/i.test(n));
  assert.deepEqual(alt((await serve(app, { path: '/login' })).raw), [
    ['X-Alt-Session-Regenerate', 'true'],
    ['X-Alt-Session-Set', '{"user":"alice"}'],
    ['X-Alt-Session-Subject', '42'],
    ['X-Alt-Session-Persist', 'true'],
    ['X-Alt-Session-Revoke', 'others'],
  ]);
  assert.deepEqual(alt((await serve(app, { path: '/forget' })).raw), [['X-Alt-Session-Subject', '']]);
  assert.deepEqual(alt((await serve(app, { path: '/everywhere' })).raw), [['X-Alt-Session-Revoke', 'all']]);
  assert.deepEqual(alt((await serve(app, { path: '/plain' })).raw), []);
});
