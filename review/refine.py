"""Click-to-refine: dispatch a SAM prompt to a GPU worker and wait for its mask.

The web process never imports torch: the task is sent by name to the ``refine``
queue (``EMOVERSE_REFINE_QUEUE``), which GPU workers serve before their bulk ``gpu`` queue
(``-Q refine,gpu``, or a refine-only worker), and its result read back from the Celery result backend. The worker-side
task is ``ml.tasks.gpu_refine_mask(image_id, box, points, labels)`` returning
``{"mask": {"size": [h, w], "counts": str} | None, "score": float}``.
"""

from __future__ import annotations

from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings

from annotations.errors import InvalidAnnotation
from annotations.models import Image
from annotations.validation import validate_box, validate_mask
from celery import current_app as celery_app
from review.errors import RefineFailed, RefineTimeout, RefineUnavailable

REFINE_TASK = "ml.tasks.gpu_refine_mask"
REFINE_OFF = "Click-to-refine is not set up on this server."  # what people other than admins are told
MAX_POINTS = 64


def check_prompt(*, image: Image, box: Any, points: Any, labels: Any) -> tuple[list[float] | None, list, list]:
    """Validate a SAM prompt: an optional box and points inside the image with 0/1 labels."""
    box = None if box is None else list(validate_box(box, image.width, image.height, "box"))
    if not isinstance(points, list) or not isinstance(labels, list) or len(points) != len(labels):
        raise InvalidAnnotation("points", "points and labels must be lists of the same length")
    if len(points) > MAX_POINTS:
        raise InvalidAnnotation("points", f"at most {MAX_POINTS} points")
    if box is None and not points:
        raise InvalidAnnotation("points", "give a box, at least one point, or both")
    clean = []
    for i, (point, label) in enumerate(zip(points, labels)):
        ok = isinstance(point, list) and len(point) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
        if not ok or not (0 <= point[0] <= image.width and 0 <= point[1] <= image.height):
            raise InvalidAnnotation(f"points[{i}]", f"must be [x, y] inside the {image.width}x{image.height} image, got {point!r}")
        if label not in (0, 1) or isinstance(label, bool):
            raise InvalidAnnotation(f"labels[{i}]", "must be 1 (foreground) or 0 (background)")
        clean.append([float(point[0]), float(point[1])])
    return box, clean, list(labels)


def refine_setup_missing() -> str:
    """What an admin must configure before click-to-refine can run (for admins' eyes), or "" when it can."""
    if "segmenter" not in settings.EMOVERSE_ML:
        return ("Click-to-refine is not available: no segmenter is configured (add a \"segmenter\" backend to the JSON "
                "file named by EMOVERSE_ML_CONFIG, see docs/ml-backends.md).")
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.CELERY_RESULT_BACKEND:
        return ("Click-to-refine is not available: it runs on a GPU worker, so set CELERY_BROKER_URL and "
                "CELERY_RESULT_BACKEND (e.g. redis://…) and start a GPU worker that serves the refine queue "
                "(`celery -A emoverse_site worker -Q refine,gpu --prefetch-multiplier 1`).")
    return ""


def refine_available() -> bool:
    """True when the server is set up for click-to-refine (the review page enables its tool)."""
    return not refine_setup_missing()


def mask_refine(*, image: Image, box: Any, points: Any, labels: Any) -> dict[str, Any]:
    """Ask the GPU worker for a mask of ``image`` from the prompt; waits up to
    ``settings.EMOVERSE_REFINE_TIMEOUT_S`` seconds."""
    box, points, labels = check_prompt(image=image, box=box, points=points, labels=labels)
    missing = refine_setup_missing()
    if missing:
        raise RefineUnavailable(missing)
    timeout = getattr(settings, "EMOVERSE_REFINE_TIMEOUT_S", 20)
    # Its own queue, served first by the GPU workers; a click nobody took in time expires unrun.
    result = celery_app.send_task(REFINE_TASK, args=[image.pk, box, points, labels],
                                  queue=settings.EMOVERSE_REFINE_QUEUE, expires=timeout)
    try:
        out = result.get(timeout=timeout)
    except CeleryTimeout:
        result.revoke()
        raise RefineTimeout(f"Click-to-refine timed out: no GPU worker answered within {timeout} s.") from None
    except Exception as exc:  # the worker's error, re-raised by Celery
        raise RefineFailed(f"Click-to-refine failed on the GPU worker: {exc}") from exc
    if not isinstance(out, dict) or "mask" not in out:
        raise RefineFailed(f"Click-to-refine: the worker returned {type(out).__name__}, not {{'mask', 'score'}}.")
    try:
        mask = None if out["mask"] is None else validate_mask(out["mask"], image.width, image.height, allow_empty=True)
    except InvalidAnnotation as exc:
        raise RefineFailed(f"Click-to-refine: the worker returned an unusable mask ({exc}).") from exc
    return {"mask": mask, "score": out.get("score")}
