"""Bring-up: the lifecycle manager, profiles, process supervision."""
