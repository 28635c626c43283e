"""Commands of the 'sandbox' area (placeholder until the area lands)."""

COMMANDS: list = []
