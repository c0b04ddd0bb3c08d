"""Teleoperation: scripted expert, keyboard and joystick devices behind one interface."""
