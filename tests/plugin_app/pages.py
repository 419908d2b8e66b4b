from django.http import HttpRequest
from django.template.response import TemplateResponse

from .models import Widget


def board(request: HttpRequest) -> TemplateResponse:
    """The widgets, as a dashboard page: served inside the admin site at ``/admin/widgets/``."""
    widgets = Widget.objects.order_by("name")
    return TemplateResponse(request, "plugin_app/board.html", {"widgets": widgets})
