"""Single sign-on: an authenticating proxy's headers, or OpenID Connect, mapped onto Django users."""
