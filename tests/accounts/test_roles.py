import pytest

from apps.accounts.models import Role
from apps.accounts.services import user_role
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "can_view", "can_operate"),
    [(Role.VIEWER, True, False), (Role.OPERATOR, True, True), (Role.ADMIN, True, True)],
)
def test_roles_grant_their_permissions(role, can_view, can_operate):
    user = user_create(role=role)
    assert user.has_perm("accounts.view_platform") is can_view
    assert user.has_perm("accounts.operate_platform") is can_operate
    assert user_role(user=user) == role


def test_only_admins_may_change_users():
    assert user_create(role=Role.ADMIN).has_perm("auth.change_user")
    assert not user_create(role=Role.OPERATOR).has_perm("auth.change_user")


def test_user_without_a_role_has_no_platform_permission():
    user = user_create(role=None)
    assert not user.has_perm("accounts.view_platform")
    assert user_role(user=user) is None
