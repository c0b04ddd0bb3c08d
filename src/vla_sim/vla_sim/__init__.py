"""Simulated robots for the workspace. Importing vla_sim.envs registers the embedded environments."""
