"""The words every app and every stage agree on (no Django).

* :data:`EMOTIONS`: Mikels' eight emotions, positive first; emotion distributions are
  mappings over exactly these, in this order when they are vectors.
* :data:`ROLES`: the roles of a B-A-S triplet's elements, in display order.
* :data:`DES_DIM`: the length of a DES vector (float32).
* :data:`USER_ROLES`: the people's roles; each is a Django group of the same name
  (``annotations.roles`` checks them).
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "amusement",
    "awe",
    "contentment",
    "excitement",
    "anger",
    "disgust",
    "fear",
    "sadness",
)
POSITIVE_EMOTIONS = EMOTIONS[:4]
NEGATIVE_EMOTIONS = EMOTIONS[4:]
ROLES: tuple[str, ...] = ("background", "attribute", "subject")
DES_DIM = 1024

REVIEWER = "reviewer"
ADJUDICATOR = "adjudicator"
RESEARCHER = "researcher"
ADMIN = "admin"
RATER = "rater"  # scores images on a dataset's assessment scales (qa)
USER_ROLES: tuple[str, ...] = (REVIEWER, ADJUDICATOR, RESEARCHER, ADMIN, RATER)
