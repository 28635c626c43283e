"""Commands of the 'publish' area (placeholder until the area lands)."""

COMMANDS: list = []
