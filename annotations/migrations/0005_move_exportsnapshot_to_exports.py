# ExportSnapshot moved to the exports app. Only Django's model state changes here; the
# table (annotations_exportsnapshot) and its rows stay, and exports.0001 takes them over.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0004_export_heartbeat_run_by'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='ExportSnapshot')],
            database_operations=[],
        ),
    ]
