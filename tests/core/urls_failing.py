"""The project's URLs plus one view that fails, to see what a 500 looks like."""

from django.urls import path

from orchestra.urls import *  # noqa: F403
from orchestra.urls import urlpatterns as project_urlpatterns


def failing_view(request):
    raise RuntimeError("secret-internal-detail")


urlpatterns = [*project_urlpatterns, path("api/v1/failing", failing_view)]
