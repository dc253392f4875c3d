"""Backtesting and research: the same strategy, risk and execution code as the live services."""
