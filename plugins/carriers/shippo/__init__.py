"""The shippo carrier adapter (being written)."""
