"""The webhook notifier (being written)."""
