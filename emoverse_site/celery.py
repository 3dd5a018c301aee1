"""The Celery application. Workers: ``celery -A emoverse_site worker -Q io,gpu``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")

app = Celery("emoverse_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
