"""The Django example app of caddy-session (see examples/SPEC.md): a whole
Django project in one file, run under gunicorn (run.sh: app:application).

The helper is helpers/python/caddy_session.py, as the middleware
"caddy_session.DjangoMiddleware"; SESSION_SECRET is the gateway's secret.
"""

import hashlib
import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    # Django's own signing key (unused here but required): derived, so
    # that every gunicorn worker has the same one.
    SECRET_KEY=hashlib.sha256(b"django example " + os.environ["SESSION_SECRET"].encode()).hexdigest(),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=[
        "django.middleware.csrf.CsrfViewMiddleware",
        "caddy_session.DjangoMiddleware",
    ],
    CADDY_SESSION={"secrets": [os.environ["SESSION_SECRET"]]},
    USE_TZ=True,
)

import django  # noqa: E402

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402

import caddy_session  # noqa: E402

SECRETS = settings.CADDY_SESSION["secrets"]


def set_or_413(request, key, value):
    """Sets key; None, or a 413 answer when the session would pass max_size."""
    try:
        request.caddy_session.set(key, value)
    except caddy_session.SessionTooLarge as e:
        return JsonResponse({"error": str(e)}, status=413)
    return None


@require_GET
def show_session(request):
    s = request.caddy_session
    return JsonResponse({"id": s.id, "new": s.is_new, "data": s.data, "verified": s.verified})


@require_GET
def verify(request):
    if caddy_session.verify(request.META, SECRETS):
        return JsonResponse({"ok": True})
    return JsonResponse({"ok": False}, status=401)


# The POST routes below are exempt from Django's CSRF check on purpose:
# they are this example's API, called by examples/check (a script, not a
# browser page holding a CSRF token). The session cookie is the gateway's,
# not Django's; a real app serving HTML forms should keep CsrfViewMiddleware
# on them (Django's CSRF cookie works beside the gateway's session) or
# check Origin itself.
@csrf_exempt
@require_POST
def login(request):
    user = request.POST.get("user", "")
    request.caddy_session.regenerate()  # a new ID on login, against session fixation
    return set_or_413(request, "user", user) or JsonResponse({"user": user})


@csrf_exempt
@require_POST
def logout(request):
    request.caddy_session.clear()
    return JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def counter(request):
    n = int(request.caddy_session.get("counter", 0)) + 1
    return set_or_413(request, "counter", n) or JsonResponse({"counter": n})


@csrf_exempt
@require_POST
def set_value(request):
    return set_or_413(request, request.POST.get("key", ""), request.POST.get("value", "")) or JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def remember(request):
    try:
        request.caddy_session.set_expiry(int(request.POST.get("seconds", "")))
    except (TypeError, ValueError) as e:
        return JsonResponse({"error": str(e)}, status=400)
    return JsonResponse({"ok": True})


@require_GET
def headers(request):
    got = {k: v for k, v in request.headers.items() if k.lower().replace("_", "-").startswith("x-session")}
    return JsonResponse({"headers": got})


urlpatterns = [
    path("session", show_session),
    path("verify", verify),
    path("login", login),
    path("logout", logout),
    path("counter", counter),
    path("set", set_value),
    path("remember", remember),
    path("headers", headers),
]

application = get_wsgi_application()
