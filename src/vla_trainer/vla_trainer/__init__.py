"""Offline training of VLA policies: policy registry, export to verified artifacts."""
