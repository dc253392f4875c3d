"""Venue credentials from environment variables or secret files; never printed.

For a prefix ``P`` (``VenueConfig.credentials_env_prefix``, default ``TRADEWIRE_<VENUE NAME>``): ``P_API_KEY``,
``P_API_SECRET`` and, where the venue has them, ``P_PASSWORD`` (passphrase) and ``P_UID``; each may instead be
given as ``P_API_KEY_FILE`` etc. naming a file (a mounted secret), read by
:func:`tradewire_common.security.read_secret`. The values never appear in a ``repr``, a log line, an error or a
metric: :class:`Credentials` redacts itself and :meth:`Credentials.scrub` removes the values (and URL
signatures) from any text the adapters log or put in an event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tradewire_common.security import read_secret, redact

_SIGNATURE = re.compile(
    r"(?i)(signature|sign|api[-_]?key|apikey|token|jwt|authorization|api-sign)([=:]\s*\"?(?:bearer\s+)?)[^&\s\",]+")


def default_prefix(venue: str) -> str:
    return "TRADEWIRE_" + re.sub(r"[^A-Z0-9]", "_", venue.upper())


@dataclass(frozen=True, repr=False)
class Credentials:
    api_key: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    uid: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return (f"Credentials(api_key={redact(self.api_key)!r}, secret={redact(self.secret)!r}, "
                f"password={redact(self.password)!r}, uid={redact(self.uid)!r})")

    __str__ = __repr__

    @property
    def present(self) -> bool:
        return bool(self.api_key and self.secret)

    def as_ccxt(self) -> dict[str, str]:
        """The ccxt constructor keys (only those that are set)."""
        out = {"apiKey": self.api_key, "secret": self.secret, "password": self.password, "uid": self.uid}
        return {k: v for k, v in out.items() if v}

    def scrub(self, text: str) -> str:
        """``text`` without any credential value nor URL/header signatures."""
        for value in (self.secret, self.api_key, self.password, self.uid):
            if value and len(value) >= 4:
                text = text.replace(value, "***")
                # PEM keys travel with escaped new lines inside JSON and error messages
                text = text.replace(value.replace("\n", "\\n"), "***")
        return _SIGNATURE.sub(lambda m: m.group(1) + m.group(2) + "***", text)


def load_credentials(prefix: str) -> Credentials:
    """Read ``{prefix}_API_KEY`` etc. (or their ``_FILE`` twins); missing ones are empty."""
    return Credentials(
        api_key=read_secret(f"{prefix}_API_KEY"),
        secret=read_secret(f"{prefix}_API_SECRET").replace("\\n", "\n"),
        password=read_secret(f"{prefix}_PASSWORD"),
        uid=read_secret(f"{prefix}_UID"),
    )
