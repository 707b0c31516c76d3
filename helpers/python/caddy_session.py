"""The app's side of caddy-session, for Python (3.9+, standard library only).

The gateway (Caddy with the ``session`` handler) hands each request's
session to the app as request headers (``X-Session-Id``, ``X-Session-New``,
``X-Session-Data``, and with a ``secret``, ``X-Session-Signature``) and
takes changes back from response headers (``X-Session-Set``,
``X-Session-Clear``, ``X-Session-Regenerate``, ``X-Session-Expiry``,
``X-Session-Subject``, ``X-Session-Revoke``, ``X-Session-Persist``), which
never reach the client. This module reads and verifies the first, and
writes the second: all changes of one response as ONE JSON merge patch
(RFC 7396) in ASCII.

    from caddy_session import WSGIMiddleware
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, secrets=[os.environ["SESSION_SECRET"]])

    # in a view:
    session = request.environ["caddy_session"]
    session.regenerate()
    session.set("user", "alice")   # raises SessionTooLarge past max_size
    session.set_subject("42")      # the user's ID: the gateway finds their sessions by it
    session.revoke_others()        # sign out the user's other devices
    session.set_persist(True)      # "remember me": a persistent cookie

Also ``ASGIMiddleware`` (``scope["caddy_session"]``) and
``DjangoMiddleware`` (``request.caddy_session``; settings in
``CADDY_SESSION = {"secrets": [...], ...}``), or ``read``, ``verify`` and
``Session.response_headers`` by hand.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_SESSION_NAME",
    "HANDLE_LENGTH",
    "MAX_EXPIRY",
    "MAX_SUBJECT_LENGTH",
    "ASGIMiddleware",
    "DjangoMiddleware",
    "JSONNumber",
    "NoSession",
    "Session",
    "SessionTooLarge",
    "WSGIMiddleware",
    "canonical_json",
    "header_names",
    "read",
    "verify",
]

DEFAULT_SESSION_NAME = "session"
DEFAULT_MAX_AGE = 300  # seconds either way between the signature's time and ours
DEFAULT_MAX_SIZE = 8000  # the gateway's default max_size, bytes of canonical JSON
MAX_EXPIRY = 34560000  # 400 days, the longest X-Session-Expiry
MAX_SUBJECT_LENGTH = 256  # bytes of printable ASCII, the longest X-Session-Subject
HANDLE_LENGTH = 22  # characters of base64url in a session's handle (X-Session-Revoke)

_JSONValue = Any
_SIGNATURE = re.compile(r"t=([0-9]{1,18}),v2=([0-9a-f]{64})")
_HANDLE = re.compile(r"[A-Za-z0-9_-]{%d}" % HANDLE_LENGTH)


class SessionTooLarge(ValueError):
    """A change would make the session larger than max_size; nothing was changed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            "caddy_session: the session would be %d bytes of canonical JSON, over max_size %d" % (size, limit)
        )
        self.size = size
        self.limit = limit


class NoSession(ValueError):
    """The request has no (well-formed) session headers: it did not come through the gateway."""


class JSONNumber(float):
    """A JSON number kept exactly as the gateway wrote it (``1e3``, ``1.50``, ``-0``).

    It is a float for arithmetic; ``text`` is how it is written back.
    """

    text: str

    def __new__(cls, text: str) -> "JSONNumber":
        obj = super().__new__(cls, text)
        obj.text = text
        return obj

    def __repr__(self) -> str:
        return "JSONNumber(%r)" % self.text

    def __deepcopy__(self, memo: Any) -> "JSONNumber":
        return self


def _parse_int(text: str) -> Union[int, JSONNumber]:
    try:
        n = int(text)
    except ValueError:  # more digits than int() converts
        return JSONNumber(text)
    return n if str(n) == text else JSONNumber(text)


def _loads(text: str) -> _JSONValue:
    return json.loads(text, parse_int=_parse_int, parse_float=JSONNumber, parse_constant=_no_constant)


def _no_constant(name: str) -> None:
    raise ValueError("%s is not JSON" % name)


# --- canonical JSON ---------------------------------------------------------

_SURROGATES = re.compile("[\ud800-\udfff]")


def _string(s: str) -> str:
    # json.dumps(ensure_ascii=True) escapes exactly as the gateway does,
    # DEL included (its ASCII escaping takes everything outside ' '..'~';
    # with ensure_ascii=False DEL would stay raw): the canonical vectors and
    # tests hold it to that. A str may also hold lone surrogates, which
    # the gateway reads as U+FFFD: they are written so.
    return json.dumps(_SURROGATES.sub("\ufffd", s), ensure_ascii=True)


def _encode(v: _JSONValue, out: List[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, JSONNumber):
        out.append(v.text)
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("caddy_session: %r is not a JSON number" % v)
        out.append(float.__repr__(v))
    elif isinstance(v, Mapping):
        out.append("{")
        first = True
        for shown, k in sorted((_SURROGATES.sub("\ufffd", k), k) for k in _keys(v)):
            if not first:
                out.append(",")
            first = False
            out.append(_string(shown))
            out.append(":")
            _encode(v[k], out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _encode(e, out)
        out.append("]")
    else:
        raise TypeError("caddy_session: %s is not a JSON value" % type(v).__name__)


def _keys(m: Mapping) -> Iterable[str]:
    for k in m:
        if not isinstance(k, str):
            raise TypeError("caddy_session: object keys must be str, not %s" % type(k).__name__)
        yield k


def canonical_json(value: _JSONValue) -> str:
    """``value`` in the gateway's canonical form: compact, keys sorted, ASCII only.

    Every character outside printable ASCII (DEL included) is a lowercase
    ``\\u`` escape, with surrogate pairs above the BMP; numbers read from
    the gateway keep their text.
    """
    out: List[str] = []
    _encode(value, out)
    return "".join(out)


def _normalize(v: _JSONValue) -> _JSONValue:
    """A copy of v in plain JSON types: dict (str keys, lone surrogates as
    U+FFFD), list, str, int, float, JSONNumber, bool, None."""
    if v is None or isinstance(v, (bool, JSONNumber)):
        return v
    if isinstance(v, str):
        return _SURROGATES.sub("\ufffd", v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("caddy_session: %r is not a JSON number" % v)
        return float(v)
    if isinstance(v, Mapping):
        return {_SURROGATES.sub("\ufffd", k): _normalize(e) for k, e in zip(_keys(v), v.values())}
    if isinstance(v, (list, tuple)):
        return [_normalize(e) for e in v]
    raise TypeError("caddy_session: %s is not a JSON value" % type(v).__name__)


def _strip_nulls(v: _JSONValue) -> _JSONValue:
    # A merge patch cannot store null members of objects (nulls in arrays stay).
    if isinstance(v, dict):
        return {k: _strip_nulls(e) for k, e in v.items() if e is not None}
    return v


def _merge(target: _JSONValue, patch: _JSONValue) -> _JSONValue:
    """RFC 7396, as the gateway applies it."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _diff(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
    """A merge patch that turns old into new, with only the keys that change."""
    patch: Dict[str, Any] = {k: None for k in old if k not in new}
    for k, v in new.items():
        if k in old and canonical_json(old[k]) == canonical_json(v):
            continue
        if isinstance(old.get(k), dict) and isinstance(v, dict):
            patch[k] = _diff(old[k], v)
        else:
            patch[k] = v
    return patch


def _over_size(result_len: int, current_len: int, limit: int) -> bool:
    """The gateway's rule: refused when over the limit and larger than before."""
    return limit > 0 and result_len > limit and result_len > current_len


# --- headers ----------------------------------------------------------------

HeadersLike = Any  # a mapping (dict, WSGI environ, Django META, werkzeug Headers) or (name, value) pairs


def header_names(session_name: str = DEFAULT_SESSION_NAME) -> Dict[str, str]:
    """The header names of session_name: ``alt_session`` gives ``X-Alt-Session-*``."""
    words = (session_name or DEFAULT_SESSION_NAME).replace("_", "-").split("-")
    prefix = "X-" + "-".join(w[:1].upper() + w[1:].lower() for w in words) + "-"
    return {
        k: prefix + v
        for k, v in {
            "id": "Id",
            "data": "Data",
            "new": "New",
            "signature": "Signature",
            "set": "Set",
            "clear": "Clear",
            "regenerate": "Regenerate",
            "expiry": "Expiry",
            "subject": "Subject",
            "revoke": "Revoke",
            "persist": "Persist",
        }.items()
    }


def _text(v: Any) -> Optional[str]:
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, str):
        return v
    return None


def _collect(headers: HeadersLike) -> Dict[str, List[str]]:
    """Header values by lower-case, dash-separated name. WSGI-style keys
    (``HTTP_X_SESSION_ID``) are read as header names."""
    out: Dict[str, List[str]] = {}
    if headers is None:
        return out
    try:
        items = headers.items() if hasattr(headers, "items") else headers
        for name, value in items:
            n, v = _text(name), _text(value)
            if n is None or v is None:
                continue
            if n.startswith("HTTP_"):
                n = n[5:]
            out.setdefault(n.lower().replace("_", "-"), []).append(v)
    except (TypeError, ValueError):
        return {}
    return out


def _single(found: Dict[str, List[str]], name: str) -> Optional[str]:
    vs = found.get(name.lower())
    if not vs or len(vs) != 1 or not vs[0].isascii():
        return None
    return vs[0]


def verify(
    headers: HeadersLike,
    secrets: Union[str, bytes, Sequence[Union[str, bytes]]],
    max_age: float = DEFAULT_MAX_AGE,
    session_name: str = DEFAULT_SESSION_NAME,
    now: Optional[float] = None,
) -> bool:
    """Whether the session headers came from the gateway.

    ``X-Session-Signature`` must be ``t=<unix seconds>,v2=<64 lowercase hex>``
    with v2 = HMAC-SHA256(secret, t "." session_name "." id "." new "." data)
    under one of ``secrets``, and t within ``max_age`` seconds of ``now``
    either way. Each header must be there once, in ASCII. Never raises:
    anything else is False. Compared in constant time.
    """
    try:
        if isinstance(secrets, (str, bytes)):
            secrets = [secrets]
        keys = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in secrets or ()]
        keys = [k for k in keys if k]
        if not keys:
            return False
        session_name = session_name or DEFAULT_SESSION_NAME
        names = header_names(session_name)
        found = _collect(headers)
        sig = _single(found, names["signature"])
        sid = _single(found, names["id"])
        new = _single(found, names["new"])
        data = _single(found, names["data"])
        if sig is None or sid is None or new is None or data is None:
            return False
        m = _SIGNATURE.fullmatch(sig)
        if m is None:
            return False
        ts, given = m.group(1), bytes.fromhex(m.group(2))
        if abs((time.time() if now is None else now) - int(ts)) > max_age:
            return False
        message = ".".join((ts, session_name, sid, new, data)).encode("ascii")
        ok = False
        for key in keys:  # every secret, so the time does not tell which matched
            ok |= hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), given)
        return ok
    except Exception:  # a check that fails says False, whatever it was given
        return False


class Session:
    """One request's session: the data the gateway sent, and the changes to send back."""

    def __init__(
        self,
        id: str = "",
        data: Optional[Dict[str, Any]] = None,
        is_new: bool = True,
        session_name: str = DEFAULT_SESSION_NAME,
        max_size: int = DEFAULT_MAX_SIZE,
        verified: bool = False,
    ) -> None:
        self.id = id
        self.is_new = is_new
        self.verified = verified
        self.session_name = session_name or DEFAULT_SESSION_NAME
        self.max_size = max_size
        self._base: Dict[str, Any] = data if data is not None else {}
        self._base_size = len(canonical_json(self._base))
        self._data: Dict[str, Any] = copy.deepcopy(self._base)
        self._clear = False
        self._regenerate = False
        self._expiry: Optional[int] = None
        self._subject: Optional[str] = None  # "" removes it
        self._revoke: Optional[str] = None
        self._persist: Optional[bool] = None

    # reading

    @property
    def data(self) -> Dict[str, Any]:
        """A copy of the data, with this response's changes."""
        return copy.deepcopy(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        """A copy of the value under key, with this response's changes."""
        return copy.deepcopy(self._data[key]) if key in self._data else default

    def __getitem__(self, key: str) -> Any:
        return copy.deepcopy(self._data[key])

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # writing

    def set(self, key: str, value: Any) -> None:
        """Make the data's ``key`` be ``value`` after the response (an object
        replaces the one there). Null members of objects are dropped (a merge
        patch cannot store them; nulls in arrays stay); ``None`` deletes the
        key. Raises SessionTooLarge (and changes nothing) past max_size."""
        self.update({key: value})

    def update(self, values: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        """Set every key, as ``set`` does, all or none."""
        changes = _normalize(dict(values or {}, **kwargs))
        nxt = dict(self._data)
        for k, v in changes.items():
            v = _strip_nulls(v)
            if v is None:
                nxt.pop(k, None)
            else:
                nxt[k] = v
        result = canonical_json(_merge(self._base, _diff(self._base, nxt)))
        if _over_size(len(result), self._base_size, self.max_size):
            raise SessionTooLarge(len(result), self.max_size)
        self._data = nxt

    def delete(self, key: str) -> None:
        """Remove key from the data (no error when absent)."""
        if key in self._data:
            self._data = {k: v for k, v in self._data.items() if k != key}

    def clear(self) -> None:
        """Empty the session: the gateway deletes it and its cookie, and its
        subject. Changes to the data made before are dropped, and so is a
        subject set before (set it again after ``clear`` for the new
        session); changes after start a new session. A ``regenerate``,
        ``set_expiry``, ``set_persist`` or ``revoke`` stays."""
        self._clear = True
        self._base, self._base_size, self._data = {}, 2, {}
        self._subject = None

    def regenerate(self) -> None:
        """A new ID for the session, its data kept: do it on login."""
        self._regenerate = True

    def set_expiry(self, seconds: Union[int, float, datetime.timedelta]) -> None:
        """This session's own idle expiry, in whole seconds up to MAX_EXPIRY; 0 is permanent."""
        if isinstance(seconds, datetime.timedelta):
            seconds = seconds.total_seconds()
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError("caddy_session: expiry must be a number of seconds")
        if seconds != int(seconds) or not 0 <= seconds <= MAX_EXPIRY:
            raise ValueError("caddy_session: expiry must be whole seconds from 0 to %d" % MAX_EXPIRY)
        self._expiry = int(seconds)

    def set_subject(self, subject: str) -> None:
        """Name the session's owner (``X-Session-Subject``), typically the
        user's ID, which the gateway keeps beside the session (not in the
        data) to find the user's sessions: to list them, and for
        ``revoke_others`` and ``revoke_all``. Send it with the data that logs
        the user in (and ``regenerate``): the gateway keeps a subject only
        for a session that has data.

        ``subject`` is an opaque str of printable ASCII (``" "`` to ``"~"``),
        1 to MAX_SUBJECT_LENGTH characters, with no leading or trailing
        space: anything else raises ValueError (TypeError for a non-str,
        such as an int ID: pass ``str(user.id)``), and changes nothing.
        ``remove_subject`` removes it."""
        if not isinstance(subject, str):
            raise TypeError("caddy_session: a subject is a str, not %s" % type(subject).__name__)
        if subject == "":
            raise ValueError("caddy_session: the subject is empty: remove_subject() removes the subject")
        if len(subject) > MAX_SUBJECT_LENGTH:
            raise ValueError(
                "caddy_session: the subject is %d characters, more than %d" % (len(subject), MAX_SUBJECT_LENGTH)
            )
        if subject[0] == " " or subject[-1] == " ":
            raise ValueError("caddy_session: the subject has a leading or trailing space")
        for i, c in enumerate(subject):
            if not " " <= c <= "~":
                raise ValueError(
                    "caddy_session: the subject has %r at %d: only printable ASCII (0x20 to 0x7E) is allowed" % (c, i)
                )
        self._subject = subject

    def remove_subject(self) -> None:
        """Remove the session's subject (an empty ``X-Session-Subject``): the
        session no longer counts among its owner's. ``clear`` removes it too."""
        self._subject = ""

    def revoke(self, target: str) -> None:
        """End sessions of this session's subject (``X-Session-Revoke``),
        after the response's other changes: ``target`` is ``"others"``
        (every other session of the subject: ``revoke_others``), ``"all"``
        (every one, this one included: ``revoke_all``) or a session's
        handle, HANDLE_LENGTH characters of base64url as the gateway lists
        the subject's sessions (that session, if it is the subject's).

        A response carries one target: another one after the first raises
        ValueError (the first stays); the same one again does not. Anything
        else raises ValueError (TypeError for a non-str), and changes
        nothing."""
        if not isinstance(target, str):
            raise TypeError("caddy_session: a revoke target is a str, not %s" % type(target).__name__)
        if target not in ("others", "all") and _HANDLE.fullmatch(target) is None:
            raise ValueError(
                'caddy_session: revoke %r: want "others", "all" or a session handle (%d characters of base64url)'
                % (target[:40], HANDLE_LENGTH)
            )
        if self._revoke is not None and self._revoke != target:
            raise ValueError(
                "caddy_session: revoke %r: this response already revokes %r, and carries one revoke"
                % (target, self._revoke)
            )
        self._revoke = target

    def revoke_others(self) -> None:
        """End every other session of this session's subject: "sign out other
        devices", after a password change say. At a login, send it with
        ``set_subject`` (and ``regenerate``): this session stays."""
        self.revoke("others")

    def revoke_all(self) -> None:
        """End every session of this session's subject, this one included
        ("sign out everywhere"): the gateway deletes this response's cookie."""
        self.revoke("all")

    def set_persist(self, persist: bool) -> None:
        """Choose this session's cookie (``X-Session-Persist``), a "remember
        me": True makes it persistent (with a Max-Age, as the gateway's
        expiry or ``set_expiry`` gives it), False a browser-session cookie
        (without), whatever the gateway's ``sessioncookie`` says. The gateway
        keeps the choice for the session, across renewals and regenerates.
        Raises TypeError for anything but a bool."""
        if not isinstance(persist, bool):
            raise TypeError("caddy_session: persist is True or False, not %s" % type(persist).__name__)
        self._persist = persist

    def patch(self) -> Optional[str]:
        """The merge patch this response sends, or None."""
        p = _diff(self._base, self._data)
        return canonical_json(p) if p else None

    def response_headers(self) -> List[Tuple[str, str]]:
        """The response headers that carry the changes to the gateway."""
        names = header_names(self.session_name)
        out: List[Tuple[str, str]] = []
        if self._clear:
            out.append((names["clear"], "true"))
        if self._regenerate:
            out.append((names["regenerate"], "true"))
        p = self.patch()
        if p is not None:
            out.append((names["set"], p))
        if self._expiry is not None:
            out.append((names["expiry"], str(self._expiry)))
        if self._subject is not None:
            out.append((names["subject"], self._subject))
        if self._persist is not None:
            out.append((names["persist"], "true" if self._persist else "false"))
        if self._revoke is not None:
            out.append((names["revoke"], self._revoke))
        return out

    def __repr__(self) -> str:
        return "Session(id=%r, is_new=%r, verified=%r, keys=%r)" % (
            self.id,
            self.is_new,
            self.verified,
            sorted(self._data),
        )


def read(headers: HeadersLike, session_name: str = DEFAULT_SESSION_NAME, max_size: int = DEFAULT_MAX_SIZE) -> Session:
    """The session in the request headers (does not verify: see ``verify``).

    Raises NoSession when X-Session-Id or X-Session-Data is missing or
    malformed. Numbers that a float would not keep exactly are JSONNumber.
    """
    names = header_names(session_name)
    found = _collect(headers)
    sid = _single(found, names["id"])
    raw = _single(found, names["data"])
    if sid is None or raw is None:
        raise NoSession("caddy_session: %s and %s are needed, once each, in ASCII" % (names["id"], names["data"]))
    try:
        data = _loads(raw)
    except ValueError as e:
        raise NoSession("caddy_session: %s is not JSON: %s" % (names["data"], e)) from None
    if not isinstance(data, dict):
        raise NoSession("caddy_session: %s is not a JSON object" % names["data"])
    new = (found.get(names["new"].lower()) or ["false"])[0]
    if new not in ("true", "false"):
        raise NoSession("caddy_session: %s is %r" % (names["new"], new))
    return Session(sid, data, new == "true", session_name, max_size)


class _Config:
    def __init__(
        self,
        secrets: Union[str, Sequence[str], None],
        max_age: float,
        session_name: str,
        max_size: int,
    ) -> None:
        self.secrets = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets or ())
        self.max_age = max_age
        self.session_name = session_name or DEFAULT_SESSION_NAME
        self.max_size = max_size

    def session_for(self, headers: HeadersLike) -> Session:
        """The request's session; with secrets, an empty new unverified one
        when the signature fails, so forged headers are never trusted."""
        verified = bool(self.secrets) and verify(headers, self.secrets, self.max_age, self.session_name)
        if self.secrets and not verified:
            return Session(session_name=self.session_name, max_size=self.max_size)
        try:
            s = read(headers, self.session_name, self.max_size)
        except NoSession:
            return Session(session_name=self.session_name, max_size=self.max_size)
        s.verified = verified
        return s


class WSGIMiddleware:
    """WSGI middleware: the session is ``environ["caddy_session"]``; its
    changes are added to the headers given to start_response (changes made
    after that, while a streamed body is produced, are not sent)."""

    def __init__(
        self,
        app: Callable,
        secrets: Union[str, Sequence[str], None] = None,
        max_age: float = DEFAULT_MAX_AGE,
        session_name: str = DEFAULT_SESSION_NAME,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.app = app
        self.config = _Config(secrets, max_age, session_name, max_size)

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        session = self.config.session_for(environ)
        environ["caddy_session"] = session

        def session_start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, list(headers) + session.response_headers(), exc_info)

        return self.app(environ, session_start_response)


class ASGIMiddleware:
    """ASGI middleware: the session is ``scope["caddy_session"]``; its
    changes are added to ``http.response.start``."""

    def __init__(
        self,
        app: Callable,
        secrets: Union[str, Sequence[str], None] = None,
        max_age: float = DEFAULT_MAX_AGE,
        session_name: str = DEFAULT_SESSION_NAME,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.app = app
        self.config = _Config(secrets, max_age, session_name, max_size)

    async def __call__(self, scope: Dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        session = self.config.session_for(scope.get("headers") or [])
        scope = dict(scope, caddy_session=session)

        async def session_send(message: Dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                extra = [(n.lower().encode("latin-1"), v.encode("ascii")) for n, v in session.response_headers()]
                message = dict(message, headers=list(message.get("headers") or []) + extra)
            await send(message)

        await self.app(scope, receive, session_send)


class DjangoMiddleware:
    """Django middleware (``"caddy_session.DjangoMiddleware"`` in MIDDLEWARE):
    the session is ``request.caddy_session``. Settings, all optional::

        CADDY_SESSION = {"secrets": [...], "max_age": 300,
                         "session_name": "session", "max_size": 8000}

    Django is imported only when the middleware is made.
    """

    def __init__(self, get_response: Callable) -> None:
        from django.conf import settings  # imported here: the module does not need Django

        conf = dict(getattr(settings, "CADDY_SESSION", None) or {})
        self.get_response = get_response
        self.config = _Config(
            conf.get("secrets"),
            conf.get("max_age", DEFAULT_MAX_AGE),
            conf.get("session_name", DEFAULT_SESSION_NAME),
            conf.get("max_size", DEFAULT_MAX_SIZE),
        )

    def __call__(self, request: Any) -> Any:
        session = self.config.session_for(request.META)
        request.caddy_session = session
        response = self.get_response(request)
        for name, value in session.response_headers():
            response[name] = value
        return response
