"""Sessions in the shared cache (the engine when REDIS_URL is set), read in one round trip together with
the few cache entries a page needs before anything else.

A request reads its session first of all (the sign-in check needs it), before any database query of the
page. A cache entry that must be read before those queries (vms.table_version's counter of database
changes) can ride along: on Redis each round trip costs a request 0.2 to 0.4 ms on a busy machine.
"""

from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore

_read_along: list[str] = []


def read_along(key: str) -> None:
    """Have every session load also read this cache key (an app calls this once, when it loads)."""
    if key not in _read_along:
        _read_along.append(key)


def value_read_along(session, key: str, default=None):
    """The value `key` had when this request's session was loaded, if it was loaded by this engine with
    `key` along (else `default`: the caller reads the key itself)."""
    return getattr(session, "read_along", {}).get(key, default)


class SessionStore(CacheSessionStore):
    def load(self):
        keys = [self.cache_key, *_read_along]
        try:
            found = self._cache.get_many(keys)
        except Exception:
            # As Django's own: a backend may refuse an odd key (#17810); the session is then reset.
            found = {}
        self.read_along = {key: found.get(key) for key in _read_along}
        session_data = found.get(self.cache_key)
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}
