"""Calibration audit: ``Dataset.audit_fraction`` (default 0.05) and a uniform ``Image.audit_draw``.

AddField evaluates a callable default once for the existing rows, so they are redrawn one
by one afterwards (``random()`` on PostgreSQL; in Python elsewhere).
"""

import random

import annotations.models
import django.core.validators
from django.conf import settings
from django.db import migrations, models


def redraw_existing(apps, schema_editor):
    Image = apps.get_model("annotations", "Image")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"UPDATE {Image._meta.db_table} SET audit_draw = random()")
        return
    ids = list(Image.objects.values_list("id", flat=True))
    for start in range(0, len(ids), 1000):
        for pk in ids[start:start + 1000]:
            Image.objects.filter(pk=pk).update(audit_draw=random.random())


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0007_element_accepted_unchecked_require_all_checked'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='dataset',
            name='audit_fraction',
            field=models.FloatField(default=0.05, help_text='Share of images drawn at random into the calibration audit (0-1), reviewed in random order.', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)]),
        ),
        migrations.AddField(
            model_name='image',
            name='audit_draw',
            field=models.FloatField(default=annotations.models.new_audit_draw),
        ),
        migrations.RunPython(redraw_existing, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['dataset', 'status', 'audit_draw', 'id'], name='image_audit_queue_idx'),
        ),
        migrations.AddConstraint(
            model_name='dataset',
            constraint=models.CheckConstraint(condition=models.Q(('audit_fraction__gte', 0), ('audit_fraction__lte', 1)), name='dataset_audit_fraction_0_1'),
        ),
        migrations.AddConstraint(
            model_name='image',
            constraint=models.CheckConstraint(condition=models.Q(('audit_draw__gte', 0), ('audit_draw__lt', 1)), name='image_audit_draw_0_1'),
        ),
    ]
