"""The REST side the plain-``httpx`` adapters share (Manifold, Tradier, IBKR): one loopback-checked
``httpx.AsyncClient`` per venue and the mapping of transport failures and throttling answers to the framework's
exceptions. What stays per venue: its auth header, body encoding and how it words an error (``error_text``).

* a refused connection (``httpx.ConnectError``) was not sent: :class:`NotSent`;
* a timeout or another transport error may have been processed: :class:`Ambiguous`;
* 429 is :class:`RateLimited` with the wait from ``Retry-After`` (a venue hook reads other headers too);
* 5xx is :class:`Ambiguous`; other 4xx a definitive :class:`VenueRefused` (:meth:`VenueHttp.request`).

Every message goes through the adapter's ``scrub`` so that no credential reaches a log or an alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tradewire_execution.live.base import Ambiguous, NotSent, RateLimited, VenueRefused
from tradewire_execution.live.guard import assert_loopback
from tradewire_execution.live.ratelimit import parse_retry_after

#: The seconds to wait after a 429, from its headers (None: the limiter's default back-off).
RetryAfter = Callable[[Mapping[str, str]], float | None]


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """The standard ``Retry-After`` (delta-seconds)."""
    return parse_retry_after(headers.get("Retry-After"))


def raise_for_throttle(venue: str, status: int, headers: Mapping[str, str], detail: str, *,
                       retry_after: RetryAfter = retry_after_header) -> None:
    """429 -> :class:`RateLimited`, 5xx -> :class:`Ambiguous` (``detail`` is already scrubbed); else nothing."""
    if status == 429:
        raise RateLimited(f"{venue} 429: {detail}", retry_after(headers))
    if status >= 500:
        raise Ambiguous(f"{venue} {status}: {detail}")


class VenueHttp:
    """An ``httpx.AsyncClient`` on one venue's base URL that raises the framework's exceptions (module docstring).

    ``venue`` names the venue in status messages (``"Tradier 429: ..."``), ``reach_name`` in transport ones
    (``"<reach_name> unreachable"``, default ``venue``), ``guard_label`` in the loopback guard's refusal."""

    def __init__(self, venue: str, base_url: str, *, headers: Mapping[str, str], timeout_s: float = 10.0,
                 scrub: Callable[[str], str] = str, error_text: Callable[[httpx.Response], str] | None = None,
                 retry_after: RetryAfter = retry_after_header, transport: httpx.AsyncBaseTransport | None = None,
                 verify: bool = True, reach_name: str = "", guard_label: str = "") -> None:
        self.venue = venue
        self.reach_name = reach_name or venue
        self.guard_label = guard_label or venue
        self.base_url = base_url.rstrip("/")
        self.scrub = scrub
        self.error_text = error_text or (lambda response: response.text.strip()[:500])
        self.retry_after = retry_after
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport,
                                        verify=verify, headers=dict(headers))

    async def send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The venue's answer whatever its status; raises only for a request that got no answer."""
        assert_loopback([self.base_url], self.guard_label)
        try:
            return await self.client.request(method, path, **kw)
        except httpx.ConnectError as exc:
            raise NotSent(f"{self.reach_name} unreachable: {self.scrub(str(exc))}") from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:  # may have been processed
            raise Ambiguous(f"{self.reach_name}: no answer ({type(exc).__name__}: {self.scrub(str(exc))})") from None

    def raise_for_throttle(self, response: httpx.Response, detail: str | None = None) -> None:
        """429 / 5xx as exceptions; ``detail`` (default: the venue's ``error_text``) is scrubbed here."""
        status = response.status_code
        if status == 429 or status >= 500:
            text = self.error_text(response) if detail is None else detail
            raise_for_throttle(self.venue, status, response.headers, self.scrub(text), retry_after=self.retry_after)

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send; 429/5xx/4xx as exceptions, else the decoded JSON body (None when empty)."""
        response = await self.send(method, path, **kw)
        self.raise_for_throttle(response)
        if response.status_code >= 400:
            raise VenueRefused(f"{self.venue} {response.status_code}: {self.scrub(self.error_text(response))}")
        return response.json() if response.content else None

    async def close(self) -> None:
        await self.client.aclose()
