"""Commands of the 'demo' area (placeholder until the area lands)."""

COMMANDS: list = []
