# ExportSnapshot, moved from the annotations app: it keeps its table
# (annotations_exportsnapshot), so this migration creates the model in Django's state only.
# Its content type (and with it its permissions and admin log entries) moves along.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label='exports', model='exportsnapshot').exists():
        ContentType.objects.using(db).filter(app_label='annotations', model='exportsnapshot').update(app_label='exports')


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label='annotations', model='exportsnapshot').exists():
        ContentType.objects.using(db).filter(app_label='exports', model='exportsnapshot').update(app_label='annotations')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('annotations', '0005_move_exportsnapshot_to_exports'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ExportSnapshot',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('version', models.PositiveIntegerField()),
                        ('format', models.CharField(choices=[('emoverse-jsonl', 'EmoVerse JSONL'), ('coco', 'COCO instance segmentation'), ('parquet', 'Parquet')], max_length=16)),
                        ('filters', models.JSONField(blank=True, default=dict)),
                        ('options', models.JSONField(blank=True, default=dict)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('complete', 'Complete'), ('failed', 'Failed')], default='pending', max_length=16)),
                        ('total', models.PositiveIntegerField(default=0)),
                        ('done', models.PositiveIntegerField(default=0)),
                        ('path', models.CharField(blank=True, help_text='Folder under EXPORT_ROOT.', max_length=500)),
                        ('manifest', models.JSONField(blank=True, null=True)),
                        ('error', models.TextField(blank=True)),
                        ('task_id', models.CharField(blank=True, max_length=64)),
                        ('run_by', models.CharField(blank=True, help_text='Username, or the OS account that ran export_dataset without --user.', max_length=150)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('heartbeat_at', models.DateTimeField(blank=True, help_text='Last progress of the running attempt (database clock); a running export silent for EMOVERSE_EXPORT_STALE_SECONDS is dead.', null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='annotations.dataset')),
                    ],
                    options={
                        'db_table': 'annotations_exportsnapshot',
                        'ordering': ['-created_at'],
                        'constraints': [
                            models.UniqueConstraint(fields=('dataset', 'version'), name='export_unique_version'),
                            models.CheckConstraint(condition=models.Q(('format__in', ['emoverse-jsonl', 'coco', 'parquet'])), name='export_format_valid'),
                            models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'running', 'complete', 'failed'])), name='export_status_valid'),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, restore_content_type),
    ]
