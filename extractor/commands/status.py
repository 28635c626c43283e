"""Commands of the 'status' area (placeholder until the area lands)."""

COMMANDS: list = []
