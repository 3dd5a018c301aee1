"""The WSGI application (``gunicorn emoverse_site.wsgi``).

Once the application and its URLconf are loaded (every view module imported now rather than on
the first request), what was built lives as long as the process: modules, classes, settings,
URL patterns, some 185,000 objects the cyclic garbage collector would otherwise walk at every
full collection, which a worker runs every few hundred requests because each request leaves a
few hundred objects in reference cycles (Django's and DRF's request objects). ``gc.freeze()``
moves them to the permanent generation: collections walk only what requests made, and a worker
forked with ``--preload`` keeps sharing those pages with its master. Nothing is leaked by it:
objects made later are collected as before.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view module now
gc.freeze()
