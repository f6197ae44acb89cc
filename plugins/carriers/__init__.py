"""Carrier plugins shipped with fulfil."""
