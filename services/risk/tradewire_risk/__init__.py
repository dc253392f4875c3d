"""Tradewire risk service."""
