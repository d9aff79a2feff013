"""URLs of the vms application."""

from django.urls import path, register_converter

from vms import views
from vms.converters import VmIdConverter

register_converter(VmIdConverter, "vmid")

app_name = "vms"
urlpatterns = [
    path("", views.vm_list, name="list"),
    path("vms/<int:key_id>/<vmid:vm_id>/", views.vm_detail, name="detail"),
    path("vms/<int:key_id>/<vmid:vm_id>/status/", views.vm_detail_status, name="detail_status"),
    path("keys/", views.key_list, name="keys"),
    path("keys/add/", views.key_add, name="key_add"),
    path("keys/<int:key_id>/rename/", views.key_rename, name="key_rename"),
    path("keys/<int:key_id>/remove/", views.key_remove, name="key_remove"),
]
