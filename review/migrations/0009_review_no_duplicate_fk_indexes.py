"""The review tables a claim, a draft save or a submit writes: no foreign key index that another
index already leads with (the composite one serves the cascades, the protects and every lookup by
that column), and no ``decision_action_idx`` (nothing reads element decisions by action). A
submit writes a lease version, a submission and a decision row per element: fourteen fewer index
entries for three elements; a claim four fewer (its lease and plan)."""


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


# (table, column, index): the foreign key indexes dropped; the constraints stay as they are.
INDEXES = [
    ("review_draft", "image_id", "review_draft_image_id_12113c2c"),
    ("review_elementdecision", "image_id", "review_elementdecision_image_id_77c736a1"),
    ("review_elementdecision", "reviewer_id", "review_elementdecision_reviewer_id_518b448f"),
    ("review_lease", "dataset_id", "review_lease_dataset_id_304ff436"),
    ("review_lease", "image_id", "review_lease_image_id_21227391"),
    ("review_lease", "reviewer_id", "review_lease_reviewer_id_fca6611c"),
    ("review_reviewplan", "dataset_id", "review_reviewplan_dataset_id_b2d4ec3d"),
    ("review_reviewsubmission", "dataset_id", "review_reviewsubmission_dataset_id_592bfdcc"),
    ("review_reviewsubmission", "image_id", "review_reviewsubmission_image_id_5d238d94"),
]


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0011_token_user_function'),
        ('review', '0008_disagreement_no_duplicate_fk_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='elementdecision',
            name='decision_action_idx',
        ),
        # Only the indexes go: AlterField would drop and re-add each constraint, validating every row.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{index}"', f'CREATE INDEX "{index}" ON "{table}" ("{column}")')
                for table, column, index in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='draft',
                    name='image',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotations.image'),
                ),
                migrations.AlterField(
                    model_name='elementdecision',
                    name='image',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotations.image'),
                ),
                migrations.AlterField(
                    model_name='elementdecision',
                    name='reviewer',
                    field=models.ForeignKey(db_index=False, help_text='Who decided: the reviewer, or the adjudicator on an adjudication row.', on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='lease',
                    name='dataset',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='leases', to='annotations.dataset'),
                ),
                migrations.AlterField(
                    model_name='lease',
                    name='image',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='leases', to='annotations.image'),
                ),
                migrations.AlterField(
                    model_name='lease',
                    name='reviewer',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='leases', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='reviewplan',
                    name='dataset',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotations.dataset'),
                ),
                migrations.AlterField(
                    model_name='reviewsubmission',
                    name='dataset',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotations.dataset'),
                ),
                migrations.AlterField(
                    model_name='reviewsubmission',
                    name='image',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='review_submissions', to='annotations.image'),
                ),
            ],
        ),
    ]
