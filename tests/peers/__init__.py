"""Local stand-ins for the vendors the channel providers talk to."""
