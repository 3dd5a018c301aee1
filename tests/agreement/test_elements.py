"""Element agreement (agreement.elements): an element approved unchecked is unknown, not agreement."""

import pytest

from agreement import elements
from agreement.results import ReportOptions
from agreement.selectors import ElementRow

KEY = "6f1c2a34-1111-4222-8333-444455556666"
PHRASES = {"background": "stormy sea", "attribute": "dark", "subject": "small boat"}
OPTIONS = ReportOptions(n_resamples=20, min_shared=1)


def rows(author: str, statuses: dict[str, str]) -> list[ElementRow]:
    return [ElementRow(1, author, KEY, role, PHRASES[role], status, None, None) for role, status in statuses.items()]


ANN = rows("ann", {"background": "accepted", "attribute": "accepted", "subject": "accepted"})
BEN = rows("ben", {"background": "accepted", "attribute": "accepted_unchecked", "subject": "accepted_unchecked"})
REVIEWERS_OF = {1: {"ann", "ben"}}


def test_between_reviewers_an_unchecked_element_is_neither_kept_nor_rejected():
    section = elements.element_section(elements.group(ANN + BEN), REVIEWERS_OF, OPTIONS)
    assert section["elements"] == 1  # only the background was decided by both
    assert section["unanimous"] == 1.0 and section["kept"] == 1.0
    assert section["unchecked"] == 2
    assert section["phrase_exact"]["n"] == 1


def test_against_a_model_an_unchecked_element_is_no_decision():
    model = rows("gpt-4o", {"background": "pending", "attribute": "pending", "subject": "pending"})
    reviewers = elements.triplets_by_author(ANN + BEN, kept_only=True)
    section = elements.model_element_sections(model, reviewers, REVIEWERS_OF, OPTIONS)["gpt-4o"]
    assert section["decisions"] == 4  # ann's three, ben's background
    assert section["kept_by_reviewers"] == pytest.approx(1.0)
    assert section["unchecked"] == 2
    assert section["phrase_exact"]["n"] == 4


def test_a_rejection_still_counts_as_one():
    carl = rows("carl", {"background": "accepted", "attribute": "rejected", "subject": "accepted_unchecked"})
    section = elements.element_section(elements.group(ANN + carl), {1: {"ann", "carl"}}, OPTIONS)
    assert section["elements"] == 2 and section["unanimous"] == pytest.approx(0.5) and section["unchecked"] == 1
