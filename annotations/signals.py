"""Signals of the data model, for apps that react to new annotations without the data model
importing them (``annotations`` imports no other app).

Each is sent after the transaction that wrote the rows commits. The ml app connects its
receivers in ``MlConfig.ready``: they queue a worker task that embeds the new phrases
(``ml.embeddings``), so triplets can be paired by meaning (:mod:`core.alignment`).
"""

from django.dispatch import Signal

# A person's answer (review or adjudication) was saved: ``annotation_ids``, a list of Annotation ids;
# ``phrases`` (optional): the answer's normalised phrases that had no stored embedding, when the
# sender looked (the receiver then skips a request for phrases it asked for a moment ago).
phrases_added = Signal()
# An import run finished: ``import_run_id``, the ImportRun whose annotations have new phrases.
import_finished = Signal()
