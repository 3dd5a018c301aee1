import os

from django.core.wsgi import get_wsgi_application

from emoverse_site.startup import prepare_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")
application = get_wsgi_application()
prepare_web_process()
