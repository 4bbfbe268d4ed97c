"""Greedy routes (`/{proxy+}`) for `chalice local` and chalice.test, matched as API Gateway matches them.

chalice's local RouteMatcher compares a path with each route segment by segment, so `/{proxy+}` would
only take one-segment paths and `/a/b` would still get the gateway's 403 quoting the Authorization
header. API Gateway serves a greedy route only when no concrete route matches, at any depth; this
matcher does the same: chalice's own match first, then the greedy route. Development only: the Lambda
package never imports chalice.local.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

GREEDY = "/{proxy+}"


def greedy_match_route(original: Any) -> Any:
    def match_route(self: Any, url: str) -> Any:
        from chalice.local import MatchResult

        try:
            return original(self, url)
        except ValueError:
            if GREEDY not in self.route_urls:
                raise
            parsed = urlparse(url)
            proxy = parsed.path.strip("/")
            if not proxy:  # `/{proxy+}` never matches the root, as on API Gateway
                raise
            return MatchResult(GREEDY, {"proxy": proxy}, parse_qs(parsed.query, keep_blank_values=True))

    match_route.greedy = True  # type: ignore[attr-defined]
    return match_route


def install() -> None:
    """Teach chalice.local's RouteMatcher greedy routes (idempotent)."""
    from chalice.local import RouteMatcher

    if not getattr(RouteMatcher.match_route, "greedy", False):
        RouteMatcher.match_route = greedy_match_route(RouteMatcher.match_route)  # type: ignore[method-assign]
