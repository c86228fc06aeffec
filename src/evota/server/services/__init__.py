"""Use cases: plain functions over a `Database` and values; each opens one transaction."""
