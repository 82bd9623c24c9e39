from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tenants", "0002_membership_invitations"),
    ]

    operations = [
        migrations.AddField(
            model_name="clientcompany",
            name="is_active",
            field=models.BooleanField(default=True),
        ),
    ]
