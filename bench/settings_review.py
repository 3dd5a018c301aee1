"""Settings of the server that ``bench/review_api.py`` starts: the project's settings, plus
the middleware that reports each request's CPU (worker and PostgreSQL backend) and
queries in response headers (``bench/server_cpu.py``). Never used outside the benchmark."""

from emoverse_site.settings import *  # noqa: F401,F403
from emoverse_site.settings import MIDDLEWARE

MIDDLEWARE = ["bench.server_cpu.ServerCPUMiddleware", *MIDDLEWARE]
