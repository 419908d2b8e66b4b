import pytest
from django.core.management import CommandError, call_command

from apps.providers.models import LlmModel, Provider

pytestmark = pytest.mark.django_db(transaction=True)


def test_imports_the_listed_models(upstream_a, capsys):
    Provider.objects.create(name="a", base_url=upstream_a.base_url)
    call_command("sync_models", "a")
    assert "created 2" in capsys.readouterr().out
    call_command("sync_models", "--all")
    assert "created 0" in capsys.readouterr().out
    assert LlmModel.objects.count() == 2


def test_unknown_provider_is_an_error():
    with pytest.raises(CommandError, match="Unknown provider"):
        call_command("sync_models", "ghost")


def test_unreachable_provider_is_an_error():
    Provider.objects.create(name="dead", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(CommandError, match="dead"):
        call_command("sync_models", "dead")


def test_naming_nothing_is_an_error():
    with pytest.raises(CommandError):
        call_command("sync_models")
