"""QA pages: the QA review (reviewers; driven by static/qa/qa_review.js through
``qa.review_apis``), the rating page (raters and reviewers; a plain form with
static/qa/rate.js for the keys) and QA adjudication (adjudicators). Views check the role,
call ``qa.review_queue`` / ``qa.review`` / ``qa.rating`` / ``qa.adjudication`` and render."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.errors import NotAllowed, NothingToDo, VersionConflict
from annotations.models import Dataset, Image
from annotations.roles import role_required
from core.vocabulary import ADJUDICATOR, RATER, REVIEWER
from qa import adjudication, rating, review_queue
from qa.errors import InvalidPair
from qa.models import QAAdjudication, RejectReason

RATING_ROLES = (RATER, REVIEWER)
BLIND_SESSION_KEY = "qa_rating_blind"


@require_GET
@role_required(REVIEWER, RATER, ADJUDICATOR)
def qa_index(request):
    return render(request, "qa/index.html", {"datasets": Dataset.objects.order_by("slug")})


@require_GET
@role_required(REVIEWER)
def qa_review_page(request, slug: str):
    """Leases the next image with pending pairs (or the one the reviewer holds) and renders it."""
    dataset = get_object_or_404(Dataset, slug=slug)
    try:
        lease = review_queue.qa_lease_next(dataset=dataset, reviewer=request.user)
    except NothingToDo as exc:
        return render(request, "qa/review_done.html", {"dataset": dataset, "message": str(exc)})
    payload = review_queue.qa_review_payload(lease=lease)
    payload["image"]["url"] = reverse("image-file", args=[lease.image_id])
    return render(request, "qa/review.html", {"dataset": dataset, "payload": payload, "image": lease.image})


# --- rating -----------------------------------------------------------------------------------


def _blind(request) -> bool:
    return bool(request.session.get(BLIND_SESSION_KEY, False))


def _rate_form(
    request, dataset: Dataset, image: Image, *, error: str = "", field: str = "", status: int = 200, values=None
):
    scales = rating.active_scales(dataset_id=dataset.pk)
    blind = _blind(request)
    scores = {} if blind else rating.model_scores(image_id=image.pk)
    rows = []
    for scale in scales:
        default = (values or {}).get(scale.key)
        if default is None:
            default = scale.min_value + round((scale.max_value - scale.min_value) / 2 / scale.step) * scale.step
        rows.append({"scale": scale, "value": default, "models": scores.get(scale.pk, [])})
    context = {
        "dataset": dataset,
        "image": image,
        "rows": rows,
        "blind": blind,
        "error": error,
        "field": field,
        "raters_per_image": rating.raters_per_image(dataset),
    }
    return render(request, "qa/rate.html", context, status=status)


@require_GET
@role_required(*RATING_ROLES)
def rate_next(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    image_id = rating.next_image_to_rate(dataset=dataset, user=request.user)
    if image_id is None:
        return render(request, "qa/rate_done.html", {"dataset": dataset})
    return redirect("qa-rate-image", slug=slug, image_id=image_id)


@require_http_methods(["GET", "POST"])
@role_required(*RATING_ROLES)
def rate_image(request, slug: str, image_id: int):
    """GET: the form (or, once rated, the image's aggregates); POST: rate every scale at once."""
    dataset = get_object_or_404(Dataset, slug=slug)
    image = get_object_or_404(Image, pk=image_id, dataset=dataset)
    if request.method == "GET":
        if rating.has_rated(image_id=image.pk, user=request.user):
            scales = rating.active_scales(dataset_id=dataset.pk)
            return render(
                request,
                "qa/rate_result.html",
                {
                    "dataset": dataset,
                    "image": image,
                    "rows": rating.image_aggregates(image_id=image.pk, scales=scales),
                },
            )
        return _rate_form(request, dataset, image)
    values = {key[6:]: value for key, value in request.POST.items() if key.startswith("scale-")}
    try:
        rating.ratings_submit(image=image, user=request.user, values=values, blind=_blind(request))
    except InvalidPair as exc:
        return _rate_form(request, dataset, image, error=str(exc), field=exc.field, status=400, values=values)
    except VersionConflict as exc:
        return _rate_form(request, dataset, image, error=str(exc), status=409)
    return redirect("qa-rate-image", slug=slug, image_id=image.pk)


@require_POST
@role_required(*RATING_ROLES)
def rate_blind(request, slug: str):
    """Turn blind mode (model scores hidden) on or off for this user's session."""
    request.session[BLIND_SESSION_KEY] = request.POST.get("blind") == "on"
    back = request.POST.get("next", "")
    if back.startswith(f"/qa/rate/{slug}/") and "//" not in back:
        return redirect(back)
    return redirect("qa-rate-next", slug=slug)


# --- adjudication -----------------------------------------------------------------------------


@require_GET
@role_required(ADJUDICATOR)
def adjudication_list(request):
    slug = request.GET.get("dataset", "")
    dataset = get_object_or_404(Dataset, slug=slug) if slug else None
    items = adjudication.qa_adjudication_queue(user=request.user, dataset=dataset)
    return render(
        request,
        "qa/adjudication_list.html",
        {
            "items": list(items[:200]),
            "count": items.count(),
            "dataset": dataset,
            "datasets": Dataset.objects.order_by("slug").values_list("slug", flat=True),
        },
    )


@require_http_methods(["GET", "POST"])
@role_required(ADJUDICATOR)
def adjudication_item(request, pk: int):
    item = get_object_or_404(QAAdjudication.objects.select_related("pair", "image", "dataset"), pk=pk)
    try:
        adjudication.qa_adjudication_check(item=item, user=request.user)
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc
    error, status = "", 200
    if request.method == "POST":
        try:
            adjudication.qa_adjudication_decide(
                item=item,
                user=request.user,
                choice=request.POST.get("choice", ""),
                reject_reason=request.POST.get("reason", ""),
                note=request.POST.get("note", "")[:2000],
            )
        except InvalidPair as exc:
            error, status = str(exc), 400
        except VersionConflict as exc:
            error, status = str(exc), 409
        else:
            return redirect("qa-adjudication-list")
    return render(
        request,
        "qa/adjudication_item.html",
        {
            "item": item,
            "pair": item.pair,
            "decisions": adjudication.qa_adjudication_decisions(item=item),
            "reasons": [(v, label) for v, label in RejectReason.choices if v],
            "error": error,
        },
        status=status,
    )
