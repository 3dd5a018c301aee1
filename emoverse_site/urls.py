"""Root URLs. Each app owns its own ``urls.py`` (pages) and ``api_urls.py`` (REST)."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from emoverse_site.api_docs import login_for_browsers

urlpatterns = [
    # The review API first: next and submit are most requests, and a path is matched against the
    # includes in order (every include whose prefix fits is searched, and its patterns recorded,
    # before the next is tried). No other include's patterns start with api/review/.
    path("api/review/", include("review.api_urls")),
    path("", include("annotations.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("django-admin/", admin.site.urls),
    path("review/", include("review.urls")),
    path("qa/", include("qa.urls")),
    path("exports/", include("exports.urls")),
    path("api/exports/", include("exports.api_urls")),
    path("api/", include("annotations.api_urls")),
    path("api/qa/", include("qa.api_urls")),
    path("pipeline/", include("ml.urls")),
    # Recalibrate is ml's (it fits and stores temperatures) but sits under the calibration
    # page, which is agreement's (agreement.urls lists calibration/ before <slug:slug>/).
    path("agreement/calibration/", include("ml.calibration_urls")),
    path("agreement/", include("agreement.urls")),
    path("api/agreement/calibration/", include("ml.api_urls")),
    path("api/pipeline/", include("ml.pipeline_api_urls")),
    path("api/agreement/", include("agreement.api_urls")),
    # Logged out, a browser is sent to the login page (the docs page always, the schema when HTML is asked for).
    path("api/schema/", login_for_browsers(SpectacularAPIView.as_view()), name="api-schema"),
    # The split view serves the Swagger UI's start script as a file: no inline script.
    path(
        "api/docs/",
        login_for_browsers(SpectacularSwaggerSplitView.as_view(url_name="api-schema"), html_only=False),
        name="api-docs",
    ),
]

handler404 = "annotations.api_errors.not_found"

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
