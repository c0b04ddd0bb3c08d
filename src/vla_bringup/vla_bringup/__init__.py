"""Bring-up: the lifecycle manager, profiles, process supervision and the `vla` command."""
