"""Tests of caddy_session: python3 -m unittest discover -s helpers/python"""

import asyncio
import datetime
import hashlib
import hmac
import json
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import caddy_session as cs  # noqa: E402

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors.json")
SECRET = "a-test-secret-of-at-least-32-bytes-long!"


def load_vectors():
    with open(VECTORS, encoding="utf-8") as f:
        # Numbers keep their text (1e3), as the gateway's do.
        v = json.load(f, parse_int=cs._parse_int, parse_float=cs.JSONNumber)
    assert v["signatures"] and v["canonical"] and v["merge"], "vectors.json has an empty section"
    return v


def signed(secret, sid, new, data, t, session_name="session"):
    n = cs.header_names(session_name)
    msg = "%d.%s.%s.%s.%s" % (t, session_name, sid, new, data)
    mac = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
    return {n["id"]: sid, n["new"]: new, n["data"]: data, n["signature"]: "t=%d,v2=%s" % (t, mac)}


def session_with(data, max_size=cs.DEFAULT_MAX_SIZE):
    return cs.read({"X-Session-Id": "abc", "X-Session-New": "false", "X-Session-Data": data}, max_size=max_size)


class Vectors(unittest.TestCase):
    def test_signatures(self):
        vs = load_vectors()["signatures"]
        self.assertTrue(any(c["valid"] for c in vs))
        for c in vs:
            with self.subTest(c["name"]):
                got = cs.verify(c["headers"], c["secrets"], c["max_age"], c["session_name"], now=c["now"])
                self.assertIs(got, c["valid"])
                # The same as a WSGI environ and as ASGI header pairs.
                environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in c["headers"].items()}
                self.assertIs(cs.verify(environ, c["secrets"], c["max_age"], c["session_name"], now=c["now"]), c["valid"])
                pairs = [(k.lower().encode(), v.encode("utf-8")) for k, v in c["headers"].items()]
                self.assertIs(cs.verify(pairs, c["secrets"], c["max_age"], c["session_name"], now=c["now"]), c["valid"])

    def test_canonical(self):
        for c in load_vectors()["canonical"]:
            with self.subTest(c["name"]):
                self.assertEqual(cs.canonical_json(c["value"]), c["canonical"])

    def test_merge(self):
        for c in load_vectors()["merge"]:
            with self.subTest(c["name"]):
                data = cs._loads(c["data"])
                result = data
                for p in c["patches"]:
                    result = cs._merge(result, cs._loads(p))
                canon = cs.canonical_json(result)
                too_large = cs._over_size(len(canon), len(cs.canonical_json(data)), c["max_size"])
                self.assertIs(too_large, c["too_large"])
                if not too_large:
                    self.assertEqual(canon, c["result"])
                # The same through a Session, key by key, as an app would.
                s = session_with(c["data"], c["max_size"])
                try:
                    for p in c["patches"]:
                        for k, v in cs._loads(p).items():
                            s.set(k, cs._merge(s.get(k), v))
                except cs.SessionTooLarge:
                    self.assertTrue(c["too_large"], "refused, but the gateway takes it")
                    continue
                self.assertFalse(c["too_large"], "taken, but the gateway refuses it")
                self.assertEqual(cs.canonical_json(s.data), c["result"])


class Escaping(unittest.TestCase):
    def test_strings(self):
        for value, want in [
            ("plain ~", '"plain ~"'),
            ("é", '"\\u00e9"'),
            ("😀", '"\\ud83d\\ude00"'),
            ("漢字", '"\\u6f22\\u5b57"'),
            ("a\u2028b\u2029", '"a\\u2028b\\u2029"'),
            ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
            ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
            ("\x7f", '"\\u007f"'),
            ('"\\', '"\\"\\\\"'),
            ("/<>&'", "\"/<>&'\""),
            ("\ud800", '"\\ufffd"'),
        ]:
            with self.subTest(value=value):
                got = cs.canonical_json(value)
                self.assertEqual(got, want)
                self.assertTrue(got.isascii())

    def test_numbers_keep_their_text(self):
        s = session_with('{"a":1e3,"b":1.50,"c":-0,"d":12345678901234567890,"e":2}')
        self.assertEqual(cs.canonical_json(s.data), '{"a":1e3,"b":1.50,"c":-0,"d":12345678901234567890,"e":2}')
        self.assertEqual(s.get("a"), 1000.0)
        self.assertEqual(s.get("d"), 12345678901234567890)

    def test_refuses_non_json(self):
        for bad in [float("nan"), float("inf"), object(), {1: "x"}, {"k": {1, 2}}]:
            with self.subTest(bad=bad), self.assertRaises((TypeError, ValueError)):
                session_with("{}").set("k", bad)


class Writing(unittest.TestCase):
    def test_one_ascii_patch(self):
        s = session_with('{"gone":2,"keep":1,"o":{"a":1,"b":2}}')
        s.set("name", "élève 😀 漢字 \u2028")
        s.set("count", 3)
        s.set("o", {"a": 1, "c": None})
        s.delete("gone")
        s.update({"x": True}, y=[None, "z"])
        headers = s.response_headers()
        self.assertEqual(
            headers,
            [
                (
                    "X-Session-Set",
                    '{"count":3,"gone":null,"name":"\\u00e9l\\u00e8ve \\ud83d\\ude00 \\u6f22\\u5b57 \\u2028",'
                    '"o":{"b":null},"x":true,"y":[null,"z"]}',
                )
            ],
        )
        # The patch applied to the data, as the gateway does, gives the data the helper shows.
        merged = cs._merge(cs._loads('{"gone":2,"keep":1,"o":{"a":1,"b":2}}'), cs._loads(headers[0][1]))
        self.assertEqual(cs.canonical_json(merged), cs.canonical_json(s.data))

    def test_nothing_to_send(self):
        s = session_with('{"a":1}')
        s.set("a", 1)
        self.assertEqual(s.response_headers(), [])

    def test_clear_regenerate_expiry(self):
        s = session_with('{"a":1}')
        s.set("before", 1)
        s.clear()
        s.regenerate()
        s.set("after", "x")
        s.set_expiry(datetime.timedelta(days=14))
        self.assertEqual(
            s.response_headers(),
            [
                ("X-Session-Clear", "true"),
                ("X-Session-Regenerate", "true"),
                ("X-Session-Set", '{"after":"x"}'),
                ("X-Session-Expiry", "1209600"),
            ],
        )
        for bad in [-1, cs.MAX_EXPIRY + 1, 1.5]:
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                s.set_expiry(bad)
        with self.assertRaises(TypeError):
            s.set_expiry("60")
        s.set_expiry(0)
        self.assertIn(("X-Session-Expiry", "0"), s.response_headers())

    def test_size_limit(self):
        s = session_with("{}")
        s.set("k", "x" * (8000 - 8))  # {"k":"..."}: exactly 8000
        with self.assertRaises(cs.SessionTooLarge) as e:
            s.set("k", "x" * (8000 - 7))
        self.assertIsInstance(e.exception, ValueError)
        self.assertEqual((e.exception.size, e.exception.limit), (8001, 8000))
        self.assertEqual(len(cs.canonical_json(s.data)), 8000)
        # DEL is 6 bytes to the gateway, 1 to json.dumps.
        s = session_with("{}", max_size=20)
        s.set("k", "\x7f\x7f")  # {"k":"\u007f\u007f"} = 20
        with self.assertRaises(cs.SessionTooLarge):
            s.set("k", "\x7f\x7f\x7f")
        # A refused update changes nothing at all.
        s = session_with('{"a":1}')
        with self.assertRaises(cs.SessionTooLarge):
            s.update({"b": 2, "big": "x" * 8000})
        self.assertEqual(s.response_headers(), [])
        # Data over a lowered limit may shrink, not grow past what the gateway holds.
        s = session_with('{"k":"%s"}' % ("x" * 30), max_size=20)
        s.set("k", "x" * 25)
        s.set("k", "x" * 30)
        with self.assertRaises(cs.SessionTooLarge):
            s.set("k", "x" * 31)

    def test_random_changes_are_consistent(self):
        rng = random.Random(1)
        values = ["x", "é😀", "\x7f\u2028", 1, 2.5, True, None, [1, None], {"p": 1}, {"q": {"r": "s"}, "p": None}, "y" * 40]
        keys = ["a", "b", "é", "😀", "o"]
        for _ in range(300):
            base = {k: rng.choice(values) for k in keys if rng.random() < 0.5}
            base_json = cs.canonical_json(cs._strip_nulls(base))
            limit = rng.randrange(40, 160)
            s = session_with(base_json, max_size=limit)
            for _ in range(rng.randrange(1, 5)):
                k, v = rng.choice(keys), rng.choice(values)
                before = s.response_headers()
                try:
                    s.set(k, v)
                except cs.SessionTooLarge:
                    self.assertEqual(before, s.response_headers())
                    continue
                patch = s.patch()
                if patch is None:
                    continue
                self.assertTrue(patch.isascii())
                merged = cs.canonical_json(cs._merge(cs._loads(base_json), cs._loads(patch)))
                self.assertEqual(merged, cs.canonical_json(s.data))
                self.assertFalse(cs._over_size(len(merged), len(base_json), limit))


# Subjects and revoke targets the helpers take and refuse, the same in every language's tests.
ALL_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x50)) + " " + "".join(chr(c) for c in range(0x50, 0x7F))
GOOD_SUBJECTS = ["42", "user@example.com", "a b", "~", "x" * cs.MAX_SUBJECT_LENGTH, ALL_PRINTABLE]
BAD_SUBJECTS = ["", " 42", "42 ", " ", "4\t2", "a\nb", "\x00", "\x7f", "é", "\ud800", "x" * (cs.MAX_SUBJECT_LENGTH + 1)]
GOOD_TARGETS = ["others", "all", "A" * 22, "abcdefghijklmnopqrstu-", "0123456789_-ABCDEFGHIJ"]
BAD_TARGETS = [
    "", "other", "Others", "ALL", " all", "others ", "none", "A" * 21, "A" * 23,
    "A" * 21 + "+", "A" * 21 + "/", "A" * 20 + "==", "A" * 21 + "é", "A" * 21 + "\n",
]


class Owner(unittest.TestCase):
    """X-Session-Subject, X-Session-Revoke, X-Session-Persist."""

    def test_login(self):
        s = session_with('{"cart":[1]}')
        s.regenerate()
        s.set("user", "alice")
        s.set_subject("42")
        s.revoke_others()
        s.set_persist(True)
        self.assertEqual(
            s.response_headers(),
            [
                ("X-Session-Regenerate", "true"),
                ("X-Session-Set", '{"user":"alice"}'),
                ("X-Session-Subject", "42"),
                ("X-Session-Persist", "true"),
                ("X-Session-Revoke", "others"),
            ],
        )
        # A later call replaces the subject and the persist choice.
        s.set_subject("43")
        s.set_persist(False)
        headers = dict(s.response_headers())
        self.assertEqual((headers["X-Session-Subject"], headers["X-Session-Persist"]), ("43", "false"))

    def test_nothing_asked_nothing_sent(self):
        s = session_with('{"a":1}')
        self.assertEqual(s.response_headers(), [])
        s.regenerate()
        s.set("b", 2)
        s.set_expiry(3600)
        self.assertEqual([n for n, _ in s.response_headers()], ["X-Session-Regenerate", "X-Session-Set", "X-Session-Expiry"])

    def test_subject_validation(self):
        for subject in GOOD_SUBJECTS:
            with self.subTest(subject=subject):
                s = session_with("{}")
                s.set_subject(subject)
                self.assertEqual(s.response_headers(), [("X-Session-Subject", subject)])
        for subject in BAD_SUBJECTS:
            with self.subTest(subject=subject):
                s = session_with("{}")
                s.set_subject("kept")
                with self.assertRaises(ValueError) as e:
                    s.set_subject(subject)
                self.assertIn("subject", str(e.exception))
                self.assertEqual(s.response_headers(), [("X-Session-Subject", "kept")])
        for wrong in [42, None, b"42", ["42"]]:
            with self.subTest(wrong=wrong), self.assertRaises(TypeError):
                session_with("{}").set_subject(wrong)
        # remove_subject sends the empty value, which removes it.
        s = session_with('{"user":"alice"}')
        s.remove_subject()
        self.assertEqual(s.response_headers(), [("X-Session-Subject", "")])
        s.set_subject("42")
        self.assertEqual(s.response_headers(), [("X-Session-Subject", "42")])

    def test_revoke_validation(self):
        for target in GOOD_TARGETS:
            with self.subTest(target=target):
                s = session_with("{}")
                s.revoke(target)
                self.assertEqual(s.response_headers(), [("X-Session-Revoke", target)])
        for target in BAD_TARGETS:
            with self.subTest(target=target):
                s = session_with("{}")
                with self.assertRaises(ValueError) as e:
                    s.revoke(target)
                self.assertIn('want "others", "all" or a session handle', str(e.exception))
                self.assertEqual(s.response_headers(), [])
        with self.assertRaises(TypeError):
            session_with("{}").revoke(None)
        # One value per response: the same again is fine, another is refused and the first stays.
        s = session_with("{}")
        s.revoke_others()
        s.revoke("others")
        for other in [s.revoke_all, lambda: s.revoke("A" * 22)]:
            with self.assertRaises(ValueError) as e:
                other()
            self.assertIn("already revokes 'others'", str(e.exception))
        self.assertEqual(s.response_headers(), [("X-Session-Revoke", "others")])
        s = session_with('{"user":"alice"}')
        s.revoke_all()
        self.assertEqual(s.response_headers(), [("X-Session-Revoke", "all")])

    def test_persist_validation(self):
        for wrong in [1, 0, "true", None]:
            with self.subTest(wrong=wrong), self.assertRaises(TypeError):
                session_with("{}").set_persist(wrong)
        s = session_with("{}")
        s.set_persist(False)
        self.assertEqual(s.response_headers(), [("X-Session-Persist", "false")])

    def test_clear_and_regenerate(self):
        # A subject set before a clear goes with the cleared session; the revoke,
        # the persist choice and the regenerate stay.
        s = session_with('{"user":"alice"}')
        s.set_subject("42")
        s.set_persist(True)
        s.revoke_all()
        s.regenerate()
        s.clear()
        self.assertEqual(
            s.response_headers(),
            [
                ("X-Session-Clear", "true"),
                ("X-Session-Regenerate", "true"),
                ("X-Session-Persist", "true"),
                ("X-Session-Revoke", "all"),
            ],
        )
        # A subject set after the clear names the new session's owner.
        s.set("user", "bob")
        s.set_subject("43")
        headers = dict(s.response_headers())
        self.assertEqual((headers["X-Session-Set"], headers["X-Session-Subject"]), ('{"user":"bob"}', "43"))
        s.clear()
        self.assertNotIn("X-Session-Subject", dict(s.response_headers()))
        # remove_subject before a clear is dropped too: the clear removes it anyway.
        s = session_with('{"user":"alice"}')
        s.remove_subject()
        s.clear()
        self.assertEqual(s.response_headers(), [("X-Session-Clear", "true")])

    def test_session_name(self):
        s = cs.read({"X-Alt-Session-Id": "a", "X-Alt-Session-Data": "{}"}, session_name="alt_session")
        s.set_subject("42")
        s.revoke_others()
        s.set_persist(False)
        self.assertEqual(
            s.response_headers(),
            [("X-Alt-Session-Subject", "42"), ("X-Alt-Session-Persist", "false"), ("X-Alt-Session-Revoke", "others")],
        )
        names = cs.header_names("alt_session")
        self.assertEqual(
            (names["subject"], names["revoke"], names["persist"]),
            ("X-Alt-Session-Subject", "X-Alt-Session-Revoke", "X-Alt-Session-Persist"),
        )

    def test_wsgi_and_asgi(self):
        def wsgi_app(environ, start_response):
            s = environ["caddy_session"]
            s.regenerate()
            s.set("user", "alice")
            s.set_subject("42")
            s.revoke_others()
            s.set_persist(True)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        got = {}

        def start_response(status, hs, exc_info=None):
            got["headers"] = hs

        environ = {"HTTP_X_ALT_SESSION_ID": "abc", "HTTP_X_ALT_SESSION_DATA": "{}", "HTTP_X_ALT_SESSION_NEW": "true"}
        cs.WSGIMiddleware(wsgi_app, session_name="alt_session")(environ, start_response)
        self.assertEqual(
            got["headers"],
            [
                ("Content-Type", "text/plain"),
                ("X-Alt-Session-Regenerate", "true"),
                ("X-Alt-Session-Set", '{"user":"alice"}'),
                ("X-Alt-Session-Subject", "42"),
                ("X-Alt-Session-Persist", "true"),
                ("X-Alt-Session-Revoke", "others"),
            ],
        )

        async def asgi_app(scope, receive, send):
            scope["caddy_session"].remove_subject()
            scope["caddy_session"].revoke_all()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "headers": [(b"x-session-id", b"abc"), (b"x-session-data", b'{"user":"alice"}')]}
        asyncio.run(cs.ASGIMiddleware(asgi_app)(scope, receive, send))
        self.assertEqual(sent[0]["headers"], [(b"x-session-subject", b""), (b"x-session-revoke", b"all")])


class Verifying(unittest.TestCase):
    def test_hostile_never_raises(self):
        now = 1767225600
        good = signed(SECRET, "id", "false", "{}", now)
        self.assertTrue(cs.verify(good, SECRET, now=now))
        self.assertTrue(cs.verify(good, [SECRET.encode()], now=now))
        sig = good["X-Session-Signature"]
        for bad in [
            None, b"\xff\xfe", "", ",", "=", "t=", "t=,v2=", sig + ",", sig + "0", " " + sig,
            sig.upper(), sig.replace(",", ";"), "t=99999999999999999999,v2=" + "0" * 64,
            "t=%d,v2=%s" % (now, "é" * 32), "t=+%s" % sig[2:], "t=1," * 10000,
            "t=%d,v1=%s" % (now, sig.split("v2=")[1]), "\x00", 12, ["x"],
        ]:
            with self.subTest(bad=bad):
                h = dict(good, **{"X-Session-Signature": bad})
                self.assertFalse(cs.verify(h, SECRET, now=now))
        for headers in [None, {}, 5, "str", [("a",)], [(None, None)], {"X-Session-Id": None}]:
            self.assertFalse(cs.verify(headers, SECRET, now=now))
        for secrets in [None, [], "", [""], "wrong", [None]]:
            self.assertFalse(cs.verify(good, secrets, now=now))
        self.assertFalse(cs.verify(good, SECRET, max_age=10, now=now + 11))
        self.assertTrue(cs.verify(good, SECRET, max_age=10, now=now - 10))
        self.assertTrue(cs.verify(signed(SECRET, "id", "false", "{}", int(time.time())), SECRET))  # the real clock
        # Two X-Session-Data values (ASGI pairs) are refused.
        pairs = [(k.lower().encode(), v.encode()) for k, v in good.items()] + [(b"x-session-data", b"{}")]
        self.assertFalse(cs.verify(pairs, SECRET, now=now))

    def test_fuzzish(self):
        rng = random.Random(2)
        now = 1767225600
        good = signed(SECRET, "id", "false", "{}", now)
        alphabet = "t=v2,0123456789abcdefABCDEF é\x00"
        for _ in range(3000):
            sig = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 90)))
            self.assertFalse(cs.verify(dict(good, **{"X-Session-Signature": sig}), SECRET, now=now))


class Middleware(unittest.TestCase):
    def test_wsgi_round_trip(self):
        seen = {}

        def app(environ, start_response):
            s = environ["caddy_session"]
            seen["session"] = s
            s.regenerate()
            s.set("user", "élodie")
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        mw = cs.WSGIMiddleware(app, secrets=[SECRET])
        headers = signed(SECRET, "abc", "false", '{"cart":[1]}', int(time.time()))
        environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        environ["REQUEST_METHOD"] = "POST"
        got = {}

        def start_response(status, hs, exc_info=None):
            got["status"], got["headers"] = status, hs

        self.assertEqual(b"".join(mw(environ, start_response)), b"ok")
        s = seen["session"]
        self.assertTrue(s.verified)
        self.assertEqual((s.id, s.is_new, s.get("cart")), ("abc", False, [1]))
        self.assertEqual(
            got["headers"],
            [("Content-Type", "text/plain"), ("X-Session-Regenerate", "true"), ("X-Session-Set", '{"user":"\\u00e9lodie"}')],
        )
        # Forged: the data is not trusted.
        environ["HTTP_X_SESSION_DATA"] = '{"user":"admin"}'
        mw(environ, start_response)
        self.assertFalse(seen["session"].verified)
        self.assertEqual((seen["session"].id, seen["session"].get("user")), ("", "élodie"))  # only its own Set
        self.assertTrue(seen["session"].is_new)

    def test_asgi_round_trip(self):
        seen = {}

        async def app(scope, receive, send):
            s = scope["caddy_session"]
            seen["session"] = s
            s.set("n", s.get("n", 0) + 1)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok"})

        mw = cs.ASGIMiddleware(app, secrets=SECRET)
        headers = signed(SECRET, "abc", "true", '{"n":41}', int(time.time()))
        scope = {"type": "http", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        asyncio.run(mw(scope, receive, send))
        self.assertNotIn("caddy_session", scope)  # the caller's scope is left alone
        self.assertTrue(seen["session"].verified and seen["session"].is_new)
        self.assertEqual(sent[0]["headers"], [(b"content-type", b"text/plain"), (b"x-session-set", b'{"n":42}')])
        self.assertEqual(sent[1]["body"], b"ok")

        async def lifespan_app(scope, receive, send):
            seen["lifespan"] = "caddy_session" not in scope

        asyncio.run(cs.ASGIMiddleware(lifespan_app)({"type": "lifespan"}, receive, send))
        self.assertTrue(seen["lifespan"])

    def test_no_secrets_no_headers(self):
        s = cs._Config(None, 300, "session", 8000).session_for({})
        self.assertEqual((s.id, s.is_new, s.verified, s.data), ("", True, False, {}))
        with self.assertRaises(cs.NoSession):
            cs.read({"X-Session-Id": "a", "X-Session-Data": "[1]"})
        with self.assertRaises(cs.NoSession):
            cs.read({"X-Session-Id": "a", "X-Session-Data": "{", "X-Session-New": "false"})

    def test_alt_session_name(self):
        h = {"X-Alt-Session-Id": "a", "X-Alt-Session-Data": "{}", "X-Alt-Session-New": "true"}
        s = cs.read(h, session_name="alt_session")
        s.set("k", 1)
        self.assertEqual(s.response_headers(), [("X-Alt-Session-Set", '{"k":1}')])

    def test_no_django_at_import(self):
        self.assertNotIn("django", sys.modules)


if __name__ == "__main__":
    unittest.main()
