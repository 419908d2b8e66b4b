from django.urls import path

from . import views

urlpatterns = [
    path("alerts", views.AlertListApi.as_view(), name="alert-list"),
    path("alerts/<int:pk>", views.AlertDetailApi.as_view(), name="alert-detail"),
    path("alerts/<int:pk>/acknowledge", views.AlertAcknowledgeApi.as_view(),
         name="alert-acknowledge"),
    path("notification-channels", views.NotificationChannelListApi.as_view(),
         name="notification-channel-list"),
    path("notification-channels/<int:pk>", views.NotificationChannelDetailApi.as_view(),
         name="notification-channel-detail"),
    path("notification-channels/<int:pk>/test", views.NotificationChannelTestApi.as_view(),
         name="notification-channel-test"),
    path("notification-channels/<int:pk>/deliveries",
         views.NotificationDeliveryListApi.as_view(), name="notification-delivery-list"),
]  # fmt: skip
