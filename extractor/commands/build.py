"""Commands of the 'build' area (placeholder until the area lands)."""

COMMANDS: list = []
