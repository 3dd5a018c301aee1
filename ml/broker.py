"""What the broker holds of the pipeline: the runs that have a task message waiting in a queue
or reserved by a worker (prefetched, running, or waiting for its retry's countdown).

With Redis (the documented broker) a queue is a list and the messages a worker reserved
are in the ``unacked`` hash until acknowledged: both are read in pages, and each pipeline
message names its run as its first argument. Other brokers cannot be browsed; there
:func:`pending_run_ids` answers ``None`` and the sweep only sends again runs whose stage
a worker held and lost (its lease ran out). With Celery eager (no broker) nothing waits.

Reading 219K waiting messages takes a few seconds of the sweep's worker (every
``EMOVERSE_STALE_SWEEP_SECONDS``); no page reads the broker.
"""

from __future__ import annotations

import base64
import json
import logging
import re

from celery import current_app

from ml.stages.registry import QUEUES

logger = logging.getLogger(__name__)

PIPELINE_TASKS = frozenset(
    {
        "ml.tasks.annotate",
        "ml.tasks.embed",
        "ml.tasks.calibrate",
        "ml.tasks.critic",
        "ml.tasks.calibrate_critic",
        "ml.tasks.gpu_ground_segment",
    }
)
PAGE = 2000
_FIRST_ARG = re.compile(r"^\(\s*(\d+)\s*,")


def _run_id(message: dict) -> int | None:
    """The run a pipeline task message is about (its first argument), else ``None``."""
    headers = message.get("headers") or {}
    if headers.get("task") not in PIPELINE_TASKS:
        return None
    found = _FIRST_ARG.match(headers.get("argsrepr") or "")
    if found:
        return int(found.group(1))
    try:  # a message without argsrepr: the body is [args, kwargs, embed]
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _collect(raw: bytes | str, into: set[int], *, reserved: bool) -> None:
    try:
        value = json.loads(raw)
    except ValueError:
        return
    message = value[0] if reserved and isinstance(value, list) and value else value
    if isinstance(message, dict):
        run_id = _run_id(message)
        if run_id is not None:
            into.add(run_id)


def eager(app=None) -> bool:
    """Tasks run in place (no broker): nothing ever waits in one."""
    return bool((app or current_app).conf.task_always_eager)


def pending_run_ids(app=None, queues: tuple[str, ...] = QUEUES) -> set[int] | None:
    """The ids of runs with a pipeline message in ``queues`` or reserved by a worker; ``None``
    when the broker cannot be browsed (not Redis). Reserved messages are read after the
    queues, so a message a worker takes meanwhile is still seen."""
    app = app or current_app
    if eager(app):
        return set()
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        client = getattr(channel, "client", None)
        if client is None or not hasattr(channel, "_q_for_pri") or not hasattr(channel, "unacked_key"):
            logger.info("the broker (%s) cannot be browsed", connection.transport_cls)
            return None
        found: set[int] = set()
        for queue in queues:
            for priority in channel.priority_steps:
                key = channel._q_for_pri(queue, priority)
                start = 0
                while True:
                    page = client.lrange(key, start, start + PAGE - 1)
                    for raw in page:
                        _collect(raw, found, reserved=False)
                    if len(page) < PAGE:
                        break
                    start += PAGE
        for _, raw in client.hscan_iter(channel.unacked_key, count=PAGE):
            _collect(raw, found, reserved=True)
        return found
