"""The `gsvc` command: parse arguments, call the core, render results with rich.

Each subcommand lives in gsvc_cli/commands/<name>.py and registers itself here. Only working
subcommands are listed in COMMANDS.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from gsvc_cli import quick_params
from gsvc_cli.atomic import Terminated
from gsvc_cli.errors import EXIT_RUNTIME, GsvcError

quick_params.install()  # plain values without importing pydantic (see the module)

# Modules under gsvc_cli.commands, in the order `gsvc --help` lists them.
COMMANDS: list[str] = ["encode", "decode", "info", "eval", "demo"]

app = typer.Typer(
    name="gsvc",
    help="A video codec that represents every frame as a set of 2D Gaussian splats.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": os.environ.get("GSVC_DEBUG", "") not in ("", "0")}


def _version_callback(value: bool) -> None:
    if value:
        from gsvc_cli import __version__

        typer.echo(f"gsvc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show a full traceback on errors."),
) -> None:
    """A video codec that represents every frame as a set of 2D Gaussian splats."""
    _state["debug"] = _state["debug"] or debug


for _name in COMMANDS:
    importlib.import_module(f"gsvc_cli.commands.{_name}").register(app)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"gsvc: error: {message}\n")
    sys.exit(code)


def main() -> None:
    """Console-script entry point: one line per error, exit 1 (runtime) or 2 (usage)."""
    try:
        app()
    except GsvcError as exc:
        if _state["debug"]:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("gsvc: interrupted\n")
        sys.exit(130)
    except Terminated as exc:  # SIGTERM/SIGHUP while writing: temp files are already cleaned up
        sys.stderr.write(f"gsvc: {exc}\n")
        sys.exit(128 + exc.signum)
    except Exception as exc:  # a bug: still one line unless --debug
        if _state["debug"]:
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
              EXIT_RUNTIME)


if __name__ == "__main__":
    main()
