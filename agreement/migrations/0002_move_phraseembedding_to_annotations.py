# PhraseEmbedding moved to the annotations app (annotations.0006), where every app that pairs
# triplets reads it, found by the SHA-256 of the normalised phrase. The stored vectors are
# copied over (their text is already normalised: NFKC, case-folded, whitespace collapsed,
# the same as core.alignment.phrase_key) and scaled to unit length, then this app's table is dropped.

import hashlib

import numpy as np
from django.db import migrations


def _unit(vector: bytes) -> bytes:
    v = np.frombuffer(bytes(vector), dtype="<f4").astype(np.float64)
    norm = np.linalg.norm(v)
    return (v / norm).astype("<f4").tobytes() if norm > 0 else bytes(vector)


def copy_to_annotations(apps, schema_editor):
    Old = apps.get_model("agreement", "PhraseEmbedding")
    New = apps.get_model("annotations", "PhraseEmbedding")
    batch = []
    for row in Old.objects.order_by("id").iterator(chunk_size=2000):
        text = " ".join(row.text.split())
        batch.append(New(model_name=row.model_name, text_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                         text=text, dim=row.dim, vector=_unit(row.vector)))
        if len(batch) >= 2000:
            New.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    New.objects.bulk_create(batch, ignore_conflicts=True)


def copy_back(apps, schema_editor):
    Old = apps.get_model("agreement", "PhraseEmbedding")
    New = apps.get_model("annotations", "PhraseEmbedding")
    Old.objects.bulk_create([Old(model_name=row.model_name, text=row.text[:400], dim=row.dim, vector=bytes(row.vector))
                             for row in New.objects.order_by("id").iterator(chunk_size=2000)], ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('agreement', '0001_initial'),
        ('annotations', '0009_phrase_embedding'),
    ]

    operations = [
        migrations.RunPython(copy_to_annotations, copy_back),
        migrations.DeleteModel(name='PhraseEmbedding'),
    ]
