"""Errors the CLI turns into one line on stderr and an exit code.

The core raises these (never prints); `gsvc_cli.cli` catches them. Exit codes follow the
convention documented in the README and man page: 1 for runtime errors, 2 for usage errors.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


class GsvcError(Exception):
    """A failure the user can act on; the message is one line that names the file and the problem."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class UsageError(GsvcError):
    """Bad arguments or an input the user named wrongly (exit code 2)."""

    exit_code = EXIT_USAGE


class InputError(GsvcError):
    """An input file that is missing, unreadable, corrupt or unsupported (exit code 1)."""


class FormatError(InputError):
    """A .gsvc file that is not one, has an unknown version, or fails a checksum."""
