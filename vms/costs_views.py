"""The costs page: what the VMs of every account a person can see cost, from the VM list's cached data."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from vms import htmx, selectors, services
from vms.costs import RUNWAY_HORIZON_DAYS, RUNWAY_LOW_DAYS, cost_overview


@login_required
@require_GET
def cost_list(request: HttpRequest) -> HttpResponse:
    # The same listing the VM list reads (its cache in front): this page never adds a call to Fluence.
    listing = selectors.vms_for_user(user=request.user)
    services.apikeys_record_answers(results=listing.accounts)
    context = {
        "overview": cost_overview(listing),
        "runway_horizon": RUNWAY_HORIZON_DAYS,
        "runway_low": RUNWAY_LOW_DAYS,
    }
    return htmx.render(request, "vms/costs.html", context)
