"""What a web process does once, when gunicorn (``emoverse_site.wsgi``) or an ASGI server
(``emoverse_site.asgi``) loads the application, before it takes its first request.

1. Every URL pattern is loaded, and with them every view module, DRF and the API's serializers.
   Django loads them on the first request otherwise: on the review bench a worker's first ``next``
   took 1.3–1.5 s, and 45–57 ms with them loaded at the start.
2. The Celery broker's transport is imported (kombu's module and its client library's; no
   connection is opened), which a worker's first submit that queues a phrase embedding would
   import otherwise: 160–230 ms for that submit, 60–100 ms with it loaded at the start.
3. A full garbage collection, then ``gc.freeze()``: what is loaded so far (about 175,000 objects:
   Django, DRF, the models, the URL patterns) is left out of later collections. Otherwise the
   first full collection came in one of the worker's early requests and walked all of it: 100–121
   ms for that request, in the first 1,000 next + submit pairs of each of three runs in one
   process; with the collection done here, none ran in 3,000 pairs. The young generations'
   thresholds stay Python's; they cost the same either way (docs/review-at-scale.md).
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def prepare_web_process() -> None:
    from django.urls import get_resolver

    from emoverse_site.celery import app as celery_app

    get_resolver().url_patterns  # noqa: B018 -- imports the URL configuration and the views
    try:
        celery_app.connection_for_write().get_transport_cls()
    except (ImportError, KeyError, ValueError) as exc:  # an unknown scheme, a malformed URL: each send says so, as before
        logger.warning("the Celery broker's transport could not be loaded: %s", exc)
    gc.collect()
    gc.freeze()
