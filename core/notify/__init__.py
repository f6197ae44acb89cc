"""Notifications: which messages an event causes (policy), how they read (templates)."""
