"""Command modules, one per area. Each exposes ``COMMANDS``: a list of click commands."""

from . import auth, build, demo, extract, history, importing, publish, run, sandbox, status

ALL_COMMANDS = [
    *sandbox.COMMANDS,
    *auth.COMMANDS,
    *extract.COMMANDS,
    *importing.COMMANDS,
    *status.COMMANDS,
    *history.COMMANDS,
    *build.COMMANDS,
    *publish.COMMANDS,
    *run.COMMANDS,
    *demo.COMMANDS,
]
