"""HTML pages of the review app: the dataset picker, the review page shell, the
read-only image page, the disagreement log (admins, researchers) and adjudication
(adjudicators).

These views only read through selectors and render templates. The review page is
driven by static/review/review.js through the review API (docs/review-api.md), the
adjudication page writes through the API too (``review.apis``).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET

from annotations.errors import NotAllowed
from annotations.models import Dataset, Image
from annotations.roles import role_required
from core.vocabulary import ADJUDICATOR, ADMIN, RESEARCHER, REVIEWER, USER_ROLES
from review import selectors, visibility
from review.errors import NotInAdjudication
from review.models import DisagreementField, DisagreementKind
from review.refine import refine_available

LOG_PAGE_SIZE = 50


@require_GET
@role_required(REVIEWER)
def review_index(request):
    rows = [(dataset, selectors.dataset_progress(dataset=dataset)) for dataset in Dataset.objects.order_by("slug")]
    return render(request, "review/index.html", {"rows": rows})


@require_GET
@role_required(REVIEWER)
def review_page(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    return render(request, "review/review.html", {"dataset": dataset, "taxonomy": dataset.taxonomy,
                                                  "refine_available": refine_available()})


@require_GET
@role_required(*USER_ROLES)
def image_detail(request, pk: int):
    image = get_object_or_404(Image.objects.select_related("dataset"), pk=pk)
    version = request.GET.get("version")
    version = int(version) if version and version.isascii() and version.isdigit() else None  # "²".isdigit()
    annotations = selectors.image_page_annotations(image=image, user=request.user, version=version)
    context = {
        "image": image,
        "annotations": annotations,
        "shown_version": version or (annotations[0]["version"] if annotations else None),
        "versions": selectors.version_rows(image=image, user=request.user),
    }
    return render(request, "review/image_detail.html", context)


def _day(params, name: str, *, next_day: bool = False) -> datetime | None:
    """A ``YYYY-MM-DD`` query parameter as the start of that day (or of the next) in UTC."""
    raw = params.get(name, "")
    if not raw:
        return None
    try:
        day = parse_date(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD), got {raw!r}")
    try:
        return datetime.combine(day + timedelta(days=1 if next_day else 0), time.min, tzinfo=UTC)
    except OverflowError:  # the day after 9999-12-31
        raise BadRequest(f"{name} must be a date before 9999-12-31, got {raw!r}") from None


def _log_filters(params) -> dict:
    return {
        "dataset": params.get("dataset", ""), "model": params.get("model", ""),
        "field": params.get("field", "") if params.get("field") in DisagreementField.values else "",
        "kind": params.get("kind", "") if params.get("kind") in DisagreementKind.values else "",
        "reviewer": params.get("reviewer", "").strip(),
        "since": _day(params, "since"), "until": _day(params, "until", next_day=True),
    }


@require_GET
@role_required(ADMIN, RESEARCHER)
def disagreement_log(request):
    """Filterable, keyset-paginated log (``?before=<id>``, newest first); htmx requests get the table only."""
    filters = _log_filters(request.GET)
    rows = selectors.disagreement_list(user=request.user, **filters)
    before = request.GET.get("before", "")
    if before.isascii() and before.isdigit():
        rows = rows.filter(id__lt=int(before))
    page = list(rows[: LOG_PAGE_SIZE + 1])
    more = len(page) > LOG_PAGE_SIZE
    page = page[:LOG_PAGE_SIZE]
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "rows": page, "next_before": page[-1].id if more else None, "query": query.urlencode(),
        "filters": {**filters, "since": request.GET.get("since", ""), "until": request.GET.get("until", "")},
        "datasets": Dataset.objects.order_by("slug").values_list("slug", flat=True),
        "models": selectors.disagreement_model_names(dataset=filters["dataset"]),
        "fields": DisagreementField.choices, "kinds": DisagreementKind.choices,
    }
    template = "review/_disagreement_table.html" if request.htmx else "review/disagreements.html"
    return render(request, template, context)


@require_GET
@role_required(ADJUDICATOR)
def adjudication_queue_page(request):
    slug = request.GET.get("dataset", "")
    dataset = get_object_or_404(Dataset, slug=slug) if slug else None
    items = selectors.adjudication_queue(user=request.user, dataset=dataset)
    shown = list(items[:200])
    conflicts = selectors.adjudication_conflicts(shown)
    for image in shown:
        image.conflict = conflicts[image.pk]
    return render(request, "review/adjudication_queue.html", {
        "items": shown, "count": items.count(), "dataset": dataset, "min_iou": settings.EMOVERSE_ADJUDICATION_MIN_IOU,
        "datasets": Dataset.objects.order_by("slug").values_list("slug", flat=True),
    })


@require_GET
@role_required(ADJUDICATOR)
def adjudication_page(request, image_id: int):
    """One item waiting for adjudication; 404 for any other, 403 to a person who reviewed it."""
    image = get_object_or_404(Image.objects.select_related("dataset"), pk=image_id)
    try:
        visibility.adjudication_check(image=image, user=request.user)
    except NotInAdjudication as exc:
        raise Http404(str(exc)) from exc
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc
    payload = selectors.adjudication_payload(image)
    following = (selectors.adjudication_queue(user=request.user, dataset=image.dataset).exclude(pk=image.pk)
                 .values_list("pk", flat=True).first())
    return render(request, "review/adjudication_item.html", {
        "image": image, "payload": payload, "taxonomy": image.dataset.taxonomy, "next_id": following,
    })
