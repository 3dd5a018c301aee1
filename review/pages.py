"""Review pages: the dataset picker, the review page shell and the read-only image page.

The review page itself is driven by static/review/review.js through the review
API (docs/review-api.md); these views only render templates.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotations.models import Dataset, Image
from annotations.roles import role_required
from core.vocabulary import REVIEWER, USER_ROLES
from review.image_page import image_page_annotations, visible_versions
from review.selectors import dataset_progress


@require_GET
@role_required(REVIEWER)
def review_index(request):
    rows = [(dataset, dataset_progress(dataset=dataset)) for dataset in Dataset.objects.order_by("slug")]
    return render(request, "review/index.html", {"rows": rows})


@require_GET
@role_required(REVIEWER)
def review_page(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    return render(request, "review/review.html", {"dataset": dataset})


@require_GET
@role_required(*USER_ROLES)
def image_detail(request, pk: int):
    image = get_object_or_404(Image.objects.select_related("dataset"), pk=pk)
    version = request.GET.get("version")
    version = int(version) if version and version.isdigit() else None
    annotations = image_page_annotations(image=image, user=request.user, version=version)
    context = {
        "image": image,
        "annotations": annotations,
        "shown_version": version or (annotations[0]["version"] if annotations else None),
        "versions": visible_versions(image=image, user=request.user),
    }
    return render(request, "review/image_detail.html", context)
