"""Commands of the 'importing' area (placeholder until the area lands)."""

COMMANDS: list = []
