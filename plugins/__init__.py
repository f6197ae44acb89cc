"""Plugins shipped with fulfil; each registers through the ``fulfil`` entry points."""
