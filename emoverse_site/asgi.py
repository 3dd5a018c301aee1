import os

from django.core.asgi import get_asgi_application

from emoverse_site.startup import prepare_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")
application = get_asgi_application()
prepare_web_process()
