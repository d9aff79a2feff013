"""URLs of the vms application."""

from django.urls import path, register_converter

from vms import audit_views, costs_views, views
from vms.converters import VmIdConverter

register_converter(VmIdConverter, "vmid")

app_name = "vms"
urlpatterns = [
    path("", views.vm_list, name="list"),
    path("vms/<int:key_id>/<vmid:vm_id>/", views.vm_detail, name="detail"),
    path("vms/<int:key_id>/<vmid:vm_id>/status/", views.vm_detail_status, name="detail_status"),
    path("vms/delete/", views.vm_bulk_delete, name="bulk_delete"),
    path("vms/delete/jobs/<str:job_id>/", views.vm_bulk_delete_job, name="bulk_delete_job"),
    path("vms/columns/", views.vm_columns, name="vm_columns"),
    path("vms/<int:key_id>/<vmid:vm_id>/delete/", views.vm_delete, name="delete"),
    path("vms/<int:key_id>/<vmid:vm_id>/rename/", views.vm_rename, name="rename"),
    path("vms/<int:key_id>/<vmid:vm_id>/restart/", views.vm_restart, name="restart"),
    path("vms/<int:key_id>/<vmid:vm_id>/ports/", views.vm_ports, name="ports"),
    path("vms/<int:key_id>/<vmid:vm_id>/deletion-check/", views.vm_deletion_check, name="deletion_check"),
    path("costs/", costs_views.cost_list, name="costs"),
    path("audit/", audit_views.audit_list, name="audit"),
    path("audit/export.csv", audit_views.audit_export, name="audit_export"),
    path("keys/", views.key_list, name="keys"),
    path("keys/add/", views.key_add, name="key_add"),
    path("keys/<int:key_id>/rename/", views.key_rename, name="key_rename"),
    path("keys/<int:key_id>/remove/", views.key_remove, name="key_remove"),
    path("keys/<int:key_id>/sharing/", views.key_sharing, name="key_sharing"),
    path("keys/<int:key_id>/sharing/<int:share_id>/remove/", views.key_unshare, name="key_unshare"),
]
