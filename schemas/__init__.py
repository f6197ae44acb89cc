"""JSON Schemas (2020-12) shipped as package data; read with importlib.resources."""
