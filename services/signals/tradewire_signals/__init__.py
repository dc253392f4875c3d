"""Tradewire signals service."""
