"""Tradewire notifier: delivers alerts and trade notifications through apprise, evaluates price alert rules."""
