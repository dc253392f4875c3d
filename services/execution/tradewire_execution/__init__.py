"""Tradewire execution service."""
