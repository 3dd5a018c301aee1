"""Pages: home, datasets, the image grid, and permission-checked image files."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotations import selectors
from annotations.models import Dataset, Image
from annotations.roles import role_required
from core.vocabulary import USER_ROLES

ANY_ROLE = USER_ROLES


@login_required
def home(request):
    return render(request, "home.html")


@require_GET
@role_required(*ANY_ROLE)
def dataset_list(request):
    return render(request, "annotations/dataset_list.html", {"datasets": selectors.dataset_summaries()})


@require_GET
@role_required(*ANY_ROLE)
def dataset_detail(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    images, image_filter = selectors.dataset_images(dataset=dataset, params=request.GET)
    page = Paginator(images, 48).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"dataset": dataset, "page": page, "filter": image_filter, "querystring": query.urlencode()}
    template = "annotations/_image_grid.html" if request.htmx else "annotations/dataset_detail.html"
    return render(request, template, context)


def _serve(request, image: Image, field_name: str):
    field = getattr(image, field_name)
    if not field:
        raise Http404("This image has no such file.")
    storage = field.storage
    if not hasattr(storage, "path"):
        # Object storage: hand out a short-lived signed URL instead of proxying bytes.
        return HttpResponseRedirect(storage.url(field.name))
    try:
        handle = storage.open(field.name, "rb")
    except FileNotFoundError as exc:
        raise Http404("The image file is missing from storage.") from exc
    response = FileResponse(handle)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
@role_required(*ANY_ROLE)
def image_file(request, pk: int):
    return _serve(request, get_object_or_404(Image, pk=pk), "file")


@require_GET
@role_required(*ANY_ROLE)
def image_thumbnail(request, pk: int):
    image = get_object_or_404(Image, pk=pk)
    return _serve(request, image, "thumbnail" if image.thumbnail else "file")
