"""A worker killed while it sends a run's next step after its annotators (the chord's
callback) must not leave the run waiting forever.

The Redis result backend is real (this test process's own database); the "worker" is this
process calling the backend the way a worker's task does when it returns, and its death is
an exception raised right after it claimed the chord's dispatch, before it sent anything.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from celery import current_app, signature
from celery.backends.redis import RedisBackend
from celery.exceptions import Retry
from celery.result import GroupResult

from ml import runs, tasks


class Killed(BaseException):
    """The worker process died here (nothing after this line of the worker ran)."""


@pytest.fixture
def chord(redis_url, monkeypatch):
    app = current_app
    # Tests run Celery eager, whose result backend stores nothing; this one is a real Redis backend
    # that the chord reads its group back from (Celery warns about reads from an eager app's backend).
    monkeypatch.setitem(app.conf, "task_store_eager_result", True)
    backend = RedisBackend(app=app, url=redis_url)
    published = []
    # The app's own backend is off in tests (eager): the chord's group is looked up in this one.
    monkeypatch.setattr(
        GroupResult, "restore", classmethod(lambda cls, gid, backend=None, app=None: backend_restore(gid))
    )
    backend_restore = backend.restore_group
    monkeypatch.setattr(app.amqp, "_retry_publish", lambda send, *args, **kwargs: published.append(send.__self__))
    group_id = uuid.uuid4().hex
    body = signature("ml.tasks.calibrate", args=(1,), app=app).set(task_id=uuid.uuid4().hex)
    backend.set_chord_size(group_id, 2)
    parts = [SimpleNamespace(id=uuid.uuid4().hex, group=group_id, group_index=i, chord=dict(body)) for i in range(2)]
    return SimpleNamespace(backend=backend, parts=parts, published=published, body=body, group_id=group_id)


def _killed_after_claiming(chord, part, monkeypatch) -> None:
    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(chord.backend, "_chord_claim_extend_script", die)
        with pytest.raises(Killed):
            chord.backend.on_chord_part_return(part, "SUCCESS", None)


def test_a_redelivered_header_task_reporting_at_once_sends_nothing(chord, monkeypatch):
    """What the e2e test hit about once in five runs: the redelivered task (its stage already
    done) reported within the dead worker's claim, and the run's next step was never sent."""
    first, last = chord.parts
    chord.backend.on_chord_part_return(first, "SUCCESS", None)
    _killed_after_claiming(chord, last, monkeypatch)

    chord.backend.on_chord_part_return(last, "SUCCESS", None)  # the redelivery, reporting at once

    assert chord.published == []


def test_a_redelivered_header_task_waits_out_the_dead_claim_and_sends_the_next_step(chord, monkeypatch):
    first, last = chord.parts
    assert tasks.chord_dispatch_wait(chord.backend, first) is None  # no claim: report at once
    chord.backend.on_chord_part_return(first, "SUCCESS", None)
    assert tasks.chord_dispatch_wait(chord.backend, last) is None  # header not complete yet
    _killed_after_claiming(chord, last, monkeypatch)

    wait = tasks.chord_dispatch_wait(chord.backend, last)
    assert wait is not None and 0 < wait <= 60
    # The redelivered task retries after ``wait``; by then the dead claim has run out.
    ckey = chord.backend.get_key_for_group(chord.group_id, ".c")
    chord.backend.client.pexpire(ckey, 1)
    chord.backend.client.delete(ckey)
    assert tasks.chord_dispatch_wait(chord.backend, last) is None
    chord.backend.on_chord_part_return(last, "SUCCESS", None)

    assert [s.options["task_id"] for s in chord.published] == [chord.body.options["task_id"]]
    # Sent once: a later copy of either header task sends nothing more, and waits for nothing.
    assert tasks.chord_dispatch_wait(chord.backend, first) is None
    chord.backend.on_chord_part_return(first, "SUCCESS", None)
    assert len(chord.published) == 1


def test_the_annotate_task_retries_after_a_held_dispatch_claim(chord, monkeypatch):
    first, last = chord.parts
    chord.backend.on_chord_part_return(first, "SUCCESS", None)
    _killed_after_claiming(chord, last, monkeypatch)
    called, retried = [], []
    monkeypatch.setattr(runs, "annotate", lambda run_id, name, **claim: called.append((run_id, name, claim["owner"])))
    monkeypatch.setattr(tasks.annotate._get_current_object(), "_backend", chord.backend)

    def retry(countdown=None, **kwargs):
        retried.append(countdown)
        raise Retry("retry", when=countdown)

    monkeypatch.setattr(tasks.annotate._get_current_object(), "retry", retry, raising=False)
    tasks.annotate.push_request(
        id=last.id, group=last.group, group_index=1, chord=last.chord, retries=0, is_eager=False, called_directly=False
    )
    try:
        with pytest.raises(Retry):
            tasks.annotate.run(7, "a")
        assert called == [(7, "a", last.id)]
        assert len(retried) == 1 and retried[0] > 0.5

        # Once the claim has run out (or the step was sent) the task returns and reports.
        chord.backend.client.delete(chord.backend.get_key_for_group(chord.group_id, ".c"))
        tasks.annotate.run(7, "a")
        assert len(retried) == 1
    finally:
        tasks.annotate.pop_request()
