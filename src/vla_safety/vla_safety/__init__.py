"""The safety shield: every command to the robot passes through it (pure core + a thin lifecycle node)."""
