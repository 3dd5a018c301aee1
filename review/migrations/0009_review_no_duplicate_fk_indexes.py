"""The review tables a claim, a draft save or a submit writes: no foreign key index that another
index already leads with (the composite one serves the cascades, the protects and every lookup by
that column), and no ``decision_action_idx`` (nothing reads element decisions by action). A
submit writes a lease version, a submission and a decision row per element: fourteen fewer index
entries for three elements; a claim four fewer (its lease and plan)."""

from django.conf import settings
from django.db import migrations, models
from django.db.models.deletion import CASCADE, PROTECT

DECIDED_BY = "Who decided: the reviewer, or the adjudicator on an adjudication row."

# (model, field, on_delete, related_name, target, table, index): the foreign keys whose own index is
# dropped; the constraints stay as they are.
FIELDS = [
    ("draft", "image", CASCADE, "+", "annotations.image", "review_draft", "review_draft_image_id_12113c2c"),
    ("elementdecision", "image", CASCADE, "+", "annotations.image", "review_elementdecision",
     "review_elementdecision_image_id_77c736a1"),
    ("elementdecision", "reviewer", PROTECT, "+", settings.AUTH_USER_MODEL, "review_elementdecision",
     "review_elementdecision_reviewer_id_518b448f"),
    ("lease", "dataset", CASCADE, "leases", "annotations.dataset", "review_lease", "review_lease_dataset_id_304ff436"),
    ("lease", "image", CASCADE, "leases", "annotations.image", "review_lease", "review_lease_image_id_21227391"),
    ("lease", "reviewer", CASCADE, "leases", settings.AUTH_USER_MODEL, "review_lease", "review_lease_reviewer_id_fca6611c"),
    ("reviewplan", "dataset", CASCADE, "+", "annotations.dataset", "review_reviewplan",
     "review_reviewplan_dataset_id_b2d4ec3d"),
    ("reviewsubmission", "dataset", CASCADE, "+", "annotations.dataset", "review_reviewsubmission",
     "review_reviewsubmission_dataset_id_592bfdcc"),
    ("reviewsubmission", "image", CASCADE, "review_submissions", "annotations.image", "review_reviewsubmission",
     "review_reviewsubmission_image_id_5d238d94"),
]


def _field(model, name, on_delete, related_name, to):
    extra = {"help_text": DECIDED_BY} if (model, name) == ("elementdecision", "reviewer") else {}
    return models.ForeignKey(db_index=False, on_delete=on_delete, related_name=related_name, to=to, **extra)


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0011_token_user_function'),
        ('review', '0008_disagreement_no_duplicate_fk_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="elementdecision", name="decision_action_idx"),
        # Only the indexes go: AlterField would drop and re-add each constraint, validating every row.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{index}"',
                                  f'CREATE INDEX "{index}" ON "{table}" ("{name}_id")')
                for _, name, _, _, _, table, index in FIELDS
            ],
            state_operations=[
                migrations.AlterField(model_name=model, name=name, field=_field(model, name, on_delete, related, to))
                for model, name, on_delete, related, to, _, _ in FIELDS
            ],
        ),
    ]
