"""The smtp notifier (being written)."""
