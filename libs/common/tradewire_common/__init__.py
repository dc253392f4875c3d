"""Tradewire shared contract and machinery."""
