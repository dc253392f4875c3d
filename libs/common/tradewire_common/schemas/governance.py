"""Automation levels and promotion stages: the approval queue's events, stage changes, parameter changes.

* ``OrderPendingApproval`` / ``OrderApprovalDecided`` (risk, on ``ord.evt.{strategy}``): a ``semi-auto``
  strategy's order parked in risk's approval queue, and how it left the queue (who approved or rejected
  it, or that it expired). The outcome follows as usual: the ``SubmitOrder`` on ``ord.cmd.{venue}`` or an
  ``OrderDenied`` (``APPROVAL_REJECTED``, ``APPROVAL_EXPIRED``, or the re-check's reason).
* ``StrategyStageChanged`` (risk, on ``gov.stage.{strategy}``): a promotion or demotion, with the reason,
  the actor and the evidence the gate looked at.
* ``StrategyParamsChanged`` (signals, on ``gov.params.{strategy}``): an ``adaptive`` strategy's parameters
  changed within their bounds.
"""

from __future__ import annotations

from tradewire_common.ids import ClientOrderId, InstrumentId, StrategyId
from tradewire_common.schemas.base import ApprovalDecision, Message, StrategyStage
from tradewire_common.schemas.orders import SubmitOrder


class OrderPendingApproval(Message, frozen=True, tag="OrderPendingApproval"):
    """A ``semi-auto`` strategy's order passed every check and waits for a person.

    ``order`` is what risk would send now; it is checked again at approval. ``expires_at_ns`` is in
    ``clock`` time (``event``: the replay's event time; ``wall``: the wall clock).
    """

    strategy_id: StrategyId
    instrument_id: InstrumentId
    client_order_id: ClientOrderId
    order: SubmitOrder
    expires_at_ns: int
    clock: str
    signal_id: str = ""


class OrderApprovalDecided(Message, frozen=True, tag="OrderApprovalDecided"):
    """An order left the approval queue: approved or rejected by ``actor``, or expired (actor ``risk``)."""

    strategy_id: StrategyId
    instrument_id: InstrumentId
    client_order_id: ClientOrderId
    decision: ApprovalDecision
    actor: str
    reason: str = ""


class StrategyStageChanged(Message, frozen=True, tag="StrategyStageChanged"):
    """A strategy was promoted (or demoted) from ``previous`` to ``stage``.

    ``backtest_report`` is the backtest summary (``tradewire backtest --json``) given with the change,
    verbatim; ``evidence`` what the gate compared (numbers as strings).
    """

    strategy_id: StrategyId
    stage: StrategyStage
    previous: StrategyStage
    reason: str
    actor: str
    backtest_report: str = ""
    evidence: dict[str, str] = {}


class StrategyParamsChanged(Message, frozen=True, tag="StrategyParamsChanged"):
    """An ``adaptive`` strategy's parameters changed (within ``param_bounds``) at run time."""

    strategy_id: StrategyId
    params: dict[str, int | float | str | bool]
    previous: dict[str, int | float | str | bool]
    reason: str
    actor: str
