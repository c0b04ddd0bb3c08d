"""Watch and steer the robot from a browser: a Rerun live view and a token-protected operator page."""
