"""The live venue framework (see :mod:`tradewire_execution.live.base`): the adapter base that implements the
venue contract for real venues, rate limits, reconciliation with the ledger, credentials and safety guards."""

from tradewire_execution.live.base import (
    CAP_GTD,
    CAP_POST_ONLY,
    AdapterHost,
    Ambiguous,
    CollectingHost,
    DuplicateClientOrderId,
    LiveVenueAdapter,
    NotSent,
    OrderNotFoundAtVenue,
    RateLimited,
    TrackedOrder,
    VenueError,
    VenueFill,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.live.credentials import Credentials, default_prefix, load_credentials
from tradewire_execution.live.guard import LiveTradingRefused, assert_loopback, require_live_armed, under_test
from tradewire_execution.live.ratelimit import TokenBucket, parse_retry_after
from tradewire_execution.live.reconcile import HttpLedger, Reconciler, ReconcileReport, RiskHttpEscalation

__all__ = [
    "CAP_GTD",
    "CAP_POST_ONLY",
    "AdapterHost",
    "Ambiguous",
    "CollectingHost",
    "Credentials",
    "DuplicateClientOrderId",
    "HttpLedger",
    "LiveTradingRefused",
    "LiveVenueAdapter",
    "NotSent",
    "OrderNotFoundAtVenue",
    "RateLimited",
    "ReconcileReport",
    "Reconciler",
    "RiskHttpEscalation",
    "TokenBucket",
    "TrackedOrder",
    "VenueError",
    "VenueFill",
    "VenueOrder",
    "VenueRefused",
    "assert_loopback",
    "default_prefix",
    "load_credentials",
    "parse_retry_after",
    "require_live_armed",
    "under_test",
]
