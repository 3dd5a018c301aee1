"""The ``rater`` role's group, and the default QA configuration (qa.defaults) for the datasets
that exist already; later datasets get it from ``qa.services.qa_config_install_defaults``."""

from django.db import migrations

from qa.defaults import DEFAULT_CATEGORIES, DEFAULT_DIMENSIONS, DEFAULT_SCALES


def forwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="rater")
    Dataset = apps.get_model("annotations", "Dataset")
    for model_name, rows in (("QACategory", DEFAULT_CATEGORIES), ("QADimension", DEFAULT_DIMENSIONS)):
        model = apps.get_model("qa", model_name)
        for dataset in Dataset.objects.all():
            if model.objects.filter(dataset=dataset).exists():
                continue
            model.objects.bulk_create([
                model(dataset=dataset, key=key, name=name, description=description, question_types=list(types), position=i)
                for i, (key, name, description, types) in enumerate(rows)
            ])
    Scale = apps.get_model("qa", "AssessmentScale")
    for dataset in Dataset.objects.all():
        if Scale.objects.filter(dataset=dataset).exists():
            continue
        Scale.objects.bulk_create([
            Scale(dataset=dataset, key=key, name=name, kind=kind, min_value=lo, max_value=hi, step=step,
                  anchors=[list(a) for a in anchors], position=i)
            for i, (key, name, kind, lo, hi, step, anchors) in enumerate(DEFAULT_SCALES)
        ])


class Migration(migrations.Migration):
    dependencies = [("qa", "0001_initial"), ("annotations", "0009_phrase_embedding"),
                    ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
