"""Tradewire datafeed service."""
