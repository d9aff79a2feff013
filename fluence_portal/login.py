"""The password sign-in form, rate limited per username, account and address before any password check."""

from django.contrib.auth.views import LoginView
from django.http import HttpResponse

from vms import ratelimit


class RateLimitedLoginView(LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs) -> HttpResponse:
        username = request.POST.get("username", "")
        verdict = ratelimit.login_attempt(request=request, username=username)
        if not verdict.allowed:
            # Refused before authenticate(): no password hash is computed, no backend is asked.
            context = self.get_context_data(
                form=self.get_form_class()(request, initial={"username": username[:150]}),
                rate_limited=f"Too many sign-in attempts; try again in {verdict.retry_minutes} "
                f"minute{'s' if verdict.retry_minutes != 1 else ''}.",
            )
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(verdict.retry_after)
            return response
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            ratelimit.refund(verdict)
        else:
            ratelimit.login_failed(request=request, username=username)
        return response
