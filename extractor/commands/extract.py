"""Commands of the 'extract' area (placeholder until the area lands)."""

COMMANDS: list = []
