"""A small, demo-like world for the API tests: every endpoint has real objects to hit.

One user per role (each with an API token), a dataset whose items get two independent
reviews (one item waits for adjudication, one is under the reviewer's live lease with a
draft), a second dataset with single reviews, the disagreement rows those reviews
logged, and a complete export snapshot with files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rest_framework.authtoken.models import Token

from annotations.models import Annotation, Dataset, Image
from core.vocabulary import ADJUDICATOR, ADMIN, RATER, RESEARCHER, REVIEWER
from exports.downloads import snapshot_files
from exports.models import ExportFormat
from exports.runs import export_run
from exports.services import export_create
from review import queue, selectors
from review.models import Lease
from review.services import review_submit
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import human_answer
from tests.review.scenes import review_item

ROLE_USERS = {REVIEWER: "fuzz-reviewer", ADJUDICATOR: "fuzz-adjudicator", RESEARCHER: "fuzz-researcher", ADMIN: "fuzz-admin",
              RATER: "fuzz-rater"}


@dataclass
class World:
    tokens: dict[str, str]  # role -> API token of that role's user
    datasets: list[str]
    images: list[int]
    annotations: list[int]
    leases: list[int]  # the reviewer's live lease first, then another reviewer's submitted one
    exports: list[int]
    export_files: list[str]
    usernames: list[str]
    submit_body: dict  # a valid submit of the reviewer's live lease
    adjudication_body: dict  # a valid final answer for the item waiting for adjudication
    models: list[str] = field(default_factory=lambda: ["gpt-4o", "gemini-2.5", "pipeline"])

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Token {self.tokens[role]}"}


def _review(dataset: Dataset, reviewer, label: str) -> Lease:
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                  annotation=human_answer(payload, label=label), time_spent_ms=4200)
    return lease


def build_world() -> World:
    users = {role: UserFactory(username=name, roles=[role]) for role, name in ROLE_USERS.items()}
    tokens = {role: Token.objects.create(user=user).key for role, user in users.items()}
    ann, bob = UserFactory(username="ann", roles=[REVIEWER]), UserFactory(username="bob", roles=[REVIEWER])

    pairs = DatasetFactory(slug="fuzz", name="Fuzz pairs", reviews_per_item=2, overlap_fraction=1.0)
    for seed in range(4):
        review_item(pairs, seed=seed, priority=seed / 10)
    disputed = _review(pairs, ann, "fear").image  # lowest priority first: both take the same item
    other = _review(pairs, bob, "awe")
    assert other.image_id == disputed.pk, "the second reviewer should get the first reviewer's item"
    live = queue.lease_next(dataset=pairs, reviewer=users[REVIEWER])
    queue.draft_save(lease=live, reviewer=users[REVIEWER], payload={"note": "half done", "version": live.version})
    item = selectors.lease_payload(live)
    disputed_item = selectors.adjudication_payload(disputed)

    singles = DatasetFactory(slug="singles", name="Single reviews")
    for seed in range(10, 12):
        review_item(singles, seed=seed)
    _review(singles, ann, "sadness")

    snapshot = export_create(dataset=singles, export_format=ExportFormat.EMOVERSE_JSONL, created_by=users[ADMIN])
    snapshot = export_run(snapshot_id=snapshot.pk)  # as the command runs it: complete now, no task queued
    return World(
        tokens=tokens,
        datasets=["fuzz", "singles"],
        images=list(Image.objects.order_by("id").values_list("id", flat=True)),
        annotations=list(Annotation.objects.order_by("id").values_list("id", flat=True)),
        leases=[live.pk, other.pk],
        exports=[snapshot.pk],
        export_files=[f["path"] for f in snapshot_files(snapshot)],
        usernames=[*ROLE_USERS.values(), "ann", "bob"],
        submit_body={"expected_version": item["version"], "decision": "approved",
                     "annotation": human_answer(item, label="fear"), "time_spent_ms": 1500},
        adjudication_body={"expected_version": disputed_item["version"], "decision": "approved",
                           "annotation": human_answer(disputed_item, label="awe")},
    )
