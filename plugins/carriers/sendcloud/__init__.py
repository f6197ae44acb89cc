"""The sendcloud carrier adapter (being written)."""
