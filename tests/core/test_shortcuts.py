"""``state_conflicts``: what every app's API views turn a service's refusal into."""

import pytest
from django.core.exceptions import ValidationError

from apps.core.api.shortcuts import state_conflicts
from apps.core.errors import ServiceError


class SwitchedOffError(Exception):
    pass


def refused(error: Exception, **kwargs) -> ServiceError:
    with pytest.raises(ServiceError) as caught, state_conflicts(**kwargs):
        raise error
    return caught.value


def test_a_refusal_naming_no_field_is_a_409_conflict():
    error = refused(ValidationError(["Already finished.", "Nothing to cancel."]))
    assert error.status_code == 409 and error.get_codes() == "conflict"
    assert str(error.detail) == "Already finished. Nothing to cancel."


def test_a_refusal_naming_fields_stays_a_validation_error():
    with pytest.raises(ValidationError), state_conflicts():
        raise ValidationError({"name": "Taken."})


def test_an_apps_own_refusal_is_a_409_with_its_code():
    error = refused(
        SwitchedOffError("The feature is off."), also={SwitchedOffError: "feature_disabled"}
    )
    assert error.status_code == 409 and error.get_codes() == "feature_disabled"
    assert str(error.detail) == "The feature is off."
    with pytest.raises(SwitchedOffError), state_conflicts():
        raise SwitchedOffError("not mapped: not a conflict")
