# Dataset settings get the bounds of their database constraints as field validators (so the
# API and the admin refuse a bad value with a 400 instead of failing in the database), and
# lease_minutes a range: 1 minute to a week. Leases set outside it before (a lease of
# 99999999999 minutes made every claim fail) are brought into the range first.

import django.core.validators
from django.db import migrations, models

LEASE_MINUTES_MIN, LEASE_MINUTES_MAX = 1, 7 * 24 * 60


def clamp_lease_minutes(apps, schema_editor):
    Dataset = apps.get_model("annotations", "Dataset")
    Dataset.objects.filter(lease_minutes__lt=LEASE_MINUTES_MIN).update(lease_minutes=LEASE_MINUTES_MIN)
    Dataset.objects.filter(lease_minutes__gt=LEASE_MINUTES_MAX).update(lease_minutes=LEASE_MINUTES_MAX)


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0005_move_exportsnapshot_to_exports'),
    ]

    operations = [
        migrations.AlterField(
            model_name='dataset',
            name='auto_accept_threshold',
            field=models.FloatField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)]),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='lease_minutes',
            field=models.PositiveIntegerField(default=30, help_text='How long a review lease lasts without a draft save (1 to 10080).', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(10080)]),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='overlap_fraction',
            field=models.FloatField(default=0.0, help_text='Fraction of items that get reviews_per_item reviews; the rest get one.', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)]),
        ),
        migrations.AlterField(
            model_name='dataset',
            name='reviews_per_item',
            field=models.PositiveSmallIntegerField(default=1, validators=[django.core.validators.MinValueValidator(1)]),
        ),
        migrations.RunPython(clamp_lease_minutes, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='dataset',
            constraint=models.CheckConstraint(condition=models.Q(('lease_minutes__gte', 1), ('lease_minutes__lte', 10080)), name='dataset_lease_minutes_range'),
        ),
    ]
