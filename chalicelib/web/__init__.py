"""Chalice blueprints: HTTP glue only (parse, call chalicelib.oauth, render)."""
