"""Errors that the CLI turns into a one-line message and a documented exit code."""


class UsageError(Exception):
    """Base class: ``str(err)`` is the one line the user sees."""

    exit_code = 1


class InputError(UsageError):
    """Bad input file or argument (names file, row, column). Exit 2."""

    exit_code = 2


class AuthError(UsageError):
    """Missing or rejected credentials. Exit 3."""

    exit_code = 3


class ApiError(UsageError):
    """The API failed after retries, or a job ended FAILED/ERROR/EXPIRED. Exit 4."""

    exit_code = 4


class LockedError(UsageError):
    """Another run holds the data-dir lock. Exit 5."""

    exit_code = 5


class BuildError(UsageError):
    """dbt build or publish failed. Exit 6."""

    exit_code = 6
