import hashlib, hmac, time

def session_headers_are_genuine(headers, secret, max_age=300):
    """headers: the request's headers (a dict); secret: the gateway's first secret."""
    sig = dict(part.split("=", 1) for part in headers["X-Session-Signature"].split(","))
    message = ".".join([sig["t"], headers["X-Session-Id"], headers["X-Session-New"], headers["X-Session-Data"]])
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig["v1"]) and abs(time.time() - int(sig["t"])) <= max_age
