"""What a web process does once, when gunicorn (``emoverse_site.wsgi``) or an ASGI server
(``emoverse_site.asgi``) loads the application, before it takes its first request.

1. Every URL pattern is loaded, and with them every view module, DRF and the API's serializers.
   Django loads them on the first request otherwise: on the review bench a worker's first ``next``
   took 1.3–1.5 s, and 45–57 ms with them loaded at the start.
2. The Celery broker's transport is imported (kombu's module and its client library's; no
   connection is opened), which a worker's first submit that queues a phrase embedding would
   import otherwise: 160–230 ms for that submit, 60–100 ms with it loaded at the start.

(``gc.freeze()`` here as well was measured and left out: in 1,000 next + submit pairs in one
process no full collection ran either way, and the young generations cost the same.)
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def prepare_web_process() -> None:
    from django.urls import get_resolver

    from emoverse_site.celery import app as celery_app

    get_resolver().url_patterns  # noqa: B018 -- imports the URL configuration and the views
    try:
        celery_app.connection_for_write().get_transport_cls()
    except (ImportError, KeyError) as exc:  # an unknown broker scheme: each send says so, as before
        logger.warning("the Celery broker's transport could not be loaded: %s", exc)
