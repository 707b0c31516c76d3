"""The Flask example app of caddy-session (see examples/SPEC.md).

Runs under gunicorn behind the gateway (run.sh); the helper is
helpers/python/caddy_session.py. SESSION_SECRET is the gateway's secret.
"""

import os

from flask import Flask, jsonify, request

import caddy_session

SECRETS = [os.environ["SESSION_SECRET"]]

app = Flask(__name__)
# The session of each request is environ["caddy_session"]: verified with
# the secret (an unverified request gets an empty, new session), and its
# changes go out as response headers the gateway applies.
app.wsgi_app = caddy_session.WSGIMiddleware(app.wsgi_app, secrets=SECRETS)


def session() -> caddy_session.Session:
    return request.environ["caddy_session"]


def set_or_413(key, value):
    """Sets key; None, or a 413 answer when the session would pass max_size."""
    try:
        session().set(key, value)
    except caddy_session.SessionTooLarge as e:
        return jsonify(error=str(e)), 413
    return None


@app.get("/session")
def show_session():
    s = session()
    return jsonify(id=s.id, new=s.is_new, data=s.data, verified=s.verified)


@app.get("/verify")
def verify():
    if caddy_session.verify(request.environ, SECRETS):
        return jsonify(ok=True)
    return jsonify(ok=False), 401


@app.post("/login")
def login():
    user = request.form.get("user", "")
    session().regenerate()  # a new ID on login, against session fixation
    return set_or_413("user", user) or jsonify(user=user)


@app.post("/logout")
def logout():
    session().clear()
    return jsonify(ok=True)


@app.post("/counter")
def counter():
    n = int(session().get("counter", 0)) + 1
    return set_or_413("counter", n) or jsonify(counter=n)


@app.post("/set")
def set_value():
    return set_or_413(request.form.get("key", ""), request.form.get("value", "")) or jsonify(ok=True)


@app.post("/remember")
def remember():
    try:
        session().set_expiry(int(request.form.get("seconds", "")))
    except (TypeError, ValueError) as e:
        return jsonify(error=str(e)), 400
    return jsonify(ok=True)


@app.get("/headers")
def headers():
    got = {k: v for k, v in request.headers.items() if k.lower().replace("_", "-").startswith("x-session")}
    return jsonify(headers=got)
