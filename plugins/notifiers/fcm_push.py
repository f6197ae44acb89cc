"""The fcm_push notifier (being written)."""
