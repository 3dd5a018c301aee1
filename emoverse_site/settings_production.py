"""Production settings: the base settings with every deploy check satisfied.

Use with ``DJANGO_SETTINGS_MODULE=emoverse_site.settings_production`` behind a TLS
proxy (gunicorn behind nginx/Caddy). ``SECRET_KEY`` must be set in the environment.
"""

from django.core.exceptions import ImproperlyConfigured

from emoverse_site.settings import *
from emoverse_site.settings import SECRET_KEY

if SECRET_KEY.startswith("dev-only"):
    raise ImproperlyConfigured("Set SECRET_KEY (50+ random characters) for production.")

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 31_536_000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
