"""Prediction-market strategies: probability models (``models``), the local order book (``book``), the
edge rule (``edge``: ``prediction_edge``) and cross-venue arbitrage (``arbitrage``: ``prediction_arbitrage``).

Kept free of imports so that ``tradewire_signals.strategy`` can use ``book`` without a cycle."""
