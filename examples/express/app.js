'use strict';
// The Express example of examples/SPEC.md: an app with sessions and no
// session code of its own beyond helpers/node. It listens on loopback only,
// behind the gateway (Caddyfile).
const express = require('express');
const caddySession = require('caddy-session');

const port = Number(process.env.APP_PORT);
const secret = process.env.SESSION_SECRET;
if (!Number.isInteger(port) || port <= 0 || !secret) {
  console.error('APP_PORT and SESSION_SECRET must be set');
  process.exit(2);
}

const app = express();
app.disable('x-powered-by');
app.use(express.urlencoded({ extended: false })); // form bodies, UTF-8
// The session on req.caddySession; req.caddySession.verified says whether
// X-Session-Signature held. Its changes go out with the response head.
app.use(caddySession.middleware({ secrets: [secret] }));

app.get('/session', (req, res) => {
  const s = req.caddySession;
  res.json({ id: s.id, new: s.isNew, data: s.data, verified: s.verified });
});

// The signature check alone: never a 500, whatever the headers hold.
app.get('/verify', (req, res) => {
  const ok = req.caddySession.verified;
  res.status(ok ? 200 : 401).json({ ok });
});

app.post('/login', (req, res) => {
  const user = req.body.user;
  if (typeof user !== 'string' || user === '') return res.status(400).json({ error: 'user is required' });
  // A new ID at login, against session fixation; the data is kept.
  req.caddySession.regenerate().set('user', user);
  res.json({ user });
});

app.post('/logout', (req, res) => {
  req.caddySession.clear();
  res.json({ ok: true });
});

app.post('/counter', (req, res) => {
  const s = req.caddySession;
  const current = s.get('counter');
  const counter = (Number.isInteger(current) ? current : 0) + 1;
  s.set('counter', counter);
  res.json({ counter });
});

app.post('/set', (req, res) => {
  const { key, value } = req.body;
  if (typeof key !== 'string' || key === '' || typeof value !== 'string') {
    return res.status(400).json({ error: 'key and value are required' });
  }
  try {
    req.caddySession.set(key, value);
  } catch (err) {
    if (err.code === 'SESSION_TOO_LARGE') return res.status(413).json({ error: err.message });
    throw err;
  }
  res.json({ ok: true });
});

app.post('/remember', (req, res) => {
  const seconds = Number(req.body.seconds);
  try {
    req.caddySession.setExpiry(seconds);
  } catch (err) {
    if (err instanceof RangeError) return res.status(400).json({ error: err.message });
    throw err;
  }
  res.json({ ok: true });
});

// What the app received: every header named like x-session-*, in any case
// and with _ for -, as Node shows it (names in lower case).
app.get('/headers', (req, res) => {
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (/^x[-_]session/i.test(name)) headers[name] = value;
  }
  res.json({ headers });
});

app.use((req, res) => res.status(404).json({ error: 'not found' }));
// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  console.error(err);
  res.status(err.status && err.status < 500 ? err.status : 500).json({ error: err.status && err.status < 500 ? err.message : 'internal error' });
});

const server = app.listen(port, '127.0.0.1', () => console.log(`express example on 127.0.0.1:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
