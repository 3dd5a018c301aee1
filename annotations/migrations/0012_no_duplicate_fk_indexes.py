"""No index of their own for four foreign keys that another index already leads with (it serves
the cascades and every lookup by that column): ``annotation.image`` (``annotation_unique_version``),
``triplet.annotation`` (``triplet_unique_index``), ``element.triplet`` (``element_unique_role``),
``image.dataset`` (``image_unique_content_per_dataset``). A review's submit writes a version, a
triplet per triplet and an element per element, and updates the image: six fewer index entries
for one triplet of three elements; an import as many per row.

Only the indexes are dropped (the foreign key constraints stay as they are, not re-validated over
every row as ``AlterField`` would do).
"""

import django.db.models.deletion
from django.db import migrations, models

# (model, field, related_name, target, table, column, index)
FIELDS = [
    ("annotation", "image", "annotations", "annotations.image", "annotations_annotation", "image_id",
     "annotations_annotation_image_id_0b6db3d6"),
    ("element", "triplet", "elements", "annotations.triplet", "annotations_element", "triplet_id",
     "annotations_element_triplet_id_e6e0b197"),
    ("image", "dataset", "images", "annotations.dataset", "annotations_image", "dataset_id",
     "annotations_image_dataset_id_e9152e7a"),
    ("triplet", "annotation", "triplets", "annotations.annotation", "annotations_triplet", "annotation_id",
     "annotations_triplet_annotation_id_6bf8f6ee"),
]


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0011_token_user_function'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{index}"', f'CREATE INDEX "{index}" ON "{table}" ("{column}")')
                for _, _, _, _, table, column, index in FIELDS
            ],
            state_operations=[
                migrations.AlterField(
                    model_name=model, name=name,
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name=related, to=to),
                )
                for model, name, related, to, _, _, _ in FIELDS
            ],
        ),
    ]
