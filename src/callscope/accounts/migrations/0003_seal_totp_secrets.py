"""TOTP secrets sealed at rest (callscope.accounts.sealing): the column widens and every
secret stored in clear before is sealed in place; backwards, they are opened again."""

from typing import Any

from django.db import migrations, models

from callscope.accounts import sealing


def _context(pk: int) -> str:
    return f"user:{pk}:totp"  # as User._totp_context


def seal_existing(apps: Any, _schema_editor: Any) -> None:
    User = apps.get_model("accounts", "User")
    for user in User.objects.exclude(totp_secret="").only("pk", "totp_secret"):
        if not sealing.is_sealed(user.totp_secret):
            user.totp_secret = sealing.seal(user.totp_secret, _context(user.pk))
            user.save(update_fields=["totp_secret"])


def open_existing(apps: Any, _schema_editor: Any) -> None:
    User = apps.get_model("accounts", "User")
    for user in User.objects.exclude(totp_secret="").only("pk", "totp_secret"):
        if sealing.is_sealed(user.totp_secret):
            user.totp_secret = sealing.unseal(user.totp_secret, _context(user.pk))
            user.save(update_fields=["totp_secret"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_governance"),
    ]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="totp_secret",
            field=models.CharField(blank=True, max_length=160),
        ),
        migrations.RunPython(seal_existing, open_existing),
    ]
