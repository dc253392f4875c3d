"""Tradewire ledger service."""
