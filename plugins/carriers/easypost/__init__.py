"""The easypost carrier adapter (being written)."""
