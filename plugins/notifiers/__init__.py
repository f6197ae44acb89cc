"""Notifier plugins shipped with fulfil."""
