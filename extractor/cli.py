"""The ``aps-usage`` command line: a thin layer over the Python API in this package.

Each area keeps its commands in ``extractor/commands/<area>.py`` as a list ``COMMANDS``;
this module only adds the global options and turns errors into one line and an exit code.
"""

from __future__ import annotations

import signal
import sys

import click

from . import AUTODESK_BASE_URL, __version__
from .config import Settings
from .errors import UsageError
from .logs import redact, setup_logging

EXIT_CODES_HELP = """\b
Exit codes: 0 ok; 1 other error; 2 bad input file or argument; 3 authentication;
4 API failure or failed job; 5 data dir locked by another run; 6 build/publish failed;
130 interrupted."""


def error_line(err: Exception) -> str:
    """The error as one line: a newline inside (a file name can hold one) is shown escaped."""
    return redact(str(err)).replace("\r", "\\r").replace("\n", "\\n")


class _ErrorsToExitCodes(click.Group):
    """Also without main() (click's CliRunner): a UsageError becomes one line + its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsageError as err:
            click.echo(f"Error: {error_line(err)}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=_ErrorsToExitCodes, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=str,  # a folder, or an object-store URL (s3://, az://, abfss://, gs://): Settings reads it
    envvar="APS_USAGE_DATA_DIR",
    default="data",
    show_default=True,
    help="Where the dataset, state, warehouse and outputs live (env APS_USAGE_DATA_DIR).",
)
@click.option(
    "--base-url",
    envvar="APS_BASE_URL",
    default=AUTODESK_BASE_URL,
    show_default=True,
    help="API base URL (env APS_BASE_URL); point it at the sandbox to try without an account.",
)
@click.option("-v", "--verbose", count=True, help="More detail in the log (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.version_option(__version__, prog_name="aps-usage")
@click.pass_context
def cli(ctx: click.Context, data_dir: str, base_url: str, verbose: int, quiet: bool) -> None:
    """Extract Autodesk Premium Reporting and Token Flex usage, model it with dbt, publish it to BI."""
    setup_logging(verbose, quiet)
    ctx.obj = Settings(data_dir=data_dir, base_url=base_url, verbose=verbose, quiet=quiet)


def _register() -> None:
    from .commands import ALL_COMMANDS

    for command in ALL_COMMANDS:
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """The ``aps-usage`` entry point: runs one command, then the process exits."""
    try:
        _run(argv)
    finally:
        _ignore_ctrl_c_while_exiting()


def _ignore_ctrl_c_while_exiting() -> None:
    # The command is over (its data committed or rolled back). While the interpreter shuts
    # down, Python puts back the default SIGINT action, so a Ctrl-C landing then killed the
    # process silently (exit -2, no "Interrupted."); an ignored SIGINT is left as it is.
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: not a process entry point
        pass


def _run(argv: list[str] | None) -> None:
    try:
        code = cli.main(args=argv, prog_name="aps-usage", standalone_mode=False)
        if isinstance(code, int) and code:  # ctx.exit(n) returns n when standalone_mode is off
            sys.exit(code)
    except UsageError as err:
        click.echo(f"Error: {error_line(err)}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:
        if not _ctrl_c_inside_duckdb(err):
            raise
        click.echo("Interrupted.", err=True)
        sys.exit(130)


def _ctrl_c_inside_duckdb(err: Exception) -> bool:
    # A Ctrl-C that lands while DuckDB runs a query is turned into DuckDB's own error, not
    # KeyboardInterrupt; nothing in aps-usage interrupts a query otherwise.
    return type(err).__name__ == "InterruptException" or (
        isinstance(err, RuntimeError) and str(err).strip() == "Query interrupted")


if __name__ == "__main__":
    main()
