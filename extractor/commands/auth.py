"""Commands of the 'auth' area (placeholder until the area lands)."""

COMMANDS: list = []
