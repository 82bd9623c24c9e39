from django.db import migrations

ZONES = [("us", "United States"), ("eu", "European Union")]


def seed_zones(apps, schema_editor):
    DataZone = apps.get_model("regions", "DataZone")
    for code, name in ZONES:
        DataZone.objects.get_or_create(code=code, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("regions", "0001_initial")]
    operations = [migrations.RunPython(seed_zones, migrations.RunPython.noop)]
