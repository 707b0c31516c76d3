'use strict';
// helpers/vectors.json, made by the gateway's own code: every helper must
// agree with it exactly.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const cs = require('..');

const file = path.join(__dirname, '..', '..', 'vectors.json');
const text = fs.readFileSync(file, 'utf8');
const vectors = JSON.parse(text);
// The same file as a raw tree, so that the canonical vectors' values keep
// their numbers exactly as written (JSON.parse would turn 1e3 into 1000).
const rawVectors = cs.parseRaw(text);

test('vectors: every section is there', () => {
  assert.ok(vectors.signatures.length >= 20);
  assert.ok(vectors.canonical.length >= 10);
  assert.ok(vectors.merge.length >= 10);
});

test('vectors: signatures', async (t) => {
  for (const v of vectors.signatures) {
    await t.test(v.name, () => {
      const opts = { now: v.now, maxAge: v.max_age, sessionName: v.session_name };
      assert.equal(cs.verify(v.headers, v.secrets, opts), v.valid);
      // As Node's http module shows them: names in lower case.
      const lower = Object.fromEntries(Object.entries(v.headers).map(([k, x]) => [k.toLowerCase(), x]));
      assert.equal(cs.verify({ headers: lower }, v.secrets, opts), v.valid);
      // Secrets as Buffers too.
      assert.equal(cs.verify(lower, v.secrets.map((s) => Buffer.from(s)), opts), v.valid);
    });
  }
});

test('vectors: canonical', async (t) => {
  const raws = rawVectors.map.get('canonical');
  for (const [i, v] of vectors.canonical.entries()) {
    await t.test(v.name, () => {
      // The raw tree of the value, numbers as written: exactly the gateway's string.
      assert.equal(cs.encodeRaw(raws[i].map.get('value')), v.canonical);
      // The value re-parsed from the canonical text gives it back too.
      assert.equal(cs.canonicalize(v.canonical), v.canonical);
      // An app's plain JS value, when JS numbers can hold it as written.
      if (v.name !== 'numbers as written') assert.equal(cs.canonicalJSON(v.value), v.canonical);
    });
  }
});

test('vectors: merge', async (t) => {
  for (const v of vectors.merge) {
    await t.test(v.name, () => {
      const result = cs.applyPatches(v.data, v.patches);
      const tooLarge = cs.overSize(result, v.data, v.max_size);
      assert.equal(tooLarge, v.too_large);
      if (!tooLarge) assert.equal(result, v.result);

      // The same change made through a Session: refused with SESSION_TOO_LARGE
      // exactly when the gateway would refuse it.
      const s = cs.read({ 'x-session-id': 'x', 'x-session-new': 'false', 'x-session-data': v.data }, { maxSize: v.max_size });
      const apply = () => {
        for (const p of v.patches) s.update(JSON.parse(p));
      };
      if (v.too_large) {
        assert.throws(apply, { code: 'SESSION_TOO_LARGE' });
        assert.equal(s.patch(), undefined, 'a refused change leaves nothing to send');
      } else {
        apply();
        assert.equal(cs.canonicalJSON(s.data), v.result);
        // The one patch the response carries gives the gateway the same result.
        const p = s.patch();
        assert.equal(cs.applyPatches(v.data, p === undefined ? [] : [p]), v.result);
      }
    });
  }
});
