"""Plain command-line values are converted without pydantic, with typer's results and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gsvc_cli import quick_params

GOLDEN = Path(__file__).resolve().parent / "golden" / "small.gsvc"


def test_checked_typer_releases() -> None:
    assert quick_params.typer_checked("0.29.0") and quick_params.typer_checked("0.29.11")
    assert not quick_params.typer_checked("0.30.0") and not quick_params.typer_checked("0.2")
    assert not quick_params.typer_checked("")


UNCHECKED = pytest.mark.skipif(
    not quick_params.typer_checked(typer.__version__),
    reason=f"typer {typer.__version__} is not in quick_params.CHECKED_TYPER {quick_params.CHECKED_TYPER}: "
           "the quick converter is off (typer converts every value; a slower start, the same values). "
           "Check this file and the CLI tests under it, then add the release.")


@UNCHECKED
def test_a_quiet_decode_imports_no_pydantic(tmp_path: Path) -> None:
    out = tmp_path / "out.y4m"
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "gsvc_cli", "decode", str(GOLDEN),
                             "-o", str(out), "-q", "--frames", "2", "--start", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.stat().st_size > 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "gsvc_cli.codec.decoder" in imported
    assert not [m for m in imported if m == "pydantic" or m.startswith("pydantic.")]


def _app(seen: dict) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run(source: Path = typer.Argument(..., exists=True, dir_okay=False),
            output: Path | None = typer.Option(None, "-o"),
            count: int | None = typer.Option(None, "--count", min=1, max=9),
            start: int = typer.Option(0, "--start", min=0),
            name: str | None = typer.Option(None, "--name"),
            scale: float = typer.Option(1.5, "--scale")) -> None:
        seen.update(source=source, output=output, count=count, start=start, name=name, scale=scale)

    return app


@UNCHECKED
def test_values_and_errors_are_typers(tmp_path: Path) -> None:
    assert quick_params.install()  # idempotent; the CLI module installs it too
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    runner = CliRunner()
    seen: dict = {}
    result = runner.invoke(_app(seen), [str(src), "-o", "out.y4m", "--count", "3", "--name", "a b",
                                        "--scale", "2"])
    assert result.exit_code == 0, result.output
    assert seen == {"source": src, "output": Path("out.y4m"), "count": 3, "start": 0, "name": "a b",
                    "scale": 2.0}
    assert type(seen["source"]) is type(src) and type(seen["count"]) is int
    seen.clear()
    assert runner.invoke(_app(seen), [str(src)]).exit_code == 0
    assert seen["output"] is None and seen["count"] is None and seen["start"] == 0
    # Out of range, not a number, a missing file: typer's own messages (through pydantic).
    for args, words in (([str(src), "--count", "0"], "greater than or equal to 1"),
                        ([str(src), "--count", "12"], "less than or equal to 9"),
                        ([str(src), "--count", "x"], "valid integer"),
                        ([str(tmp_path / "none.bin")], "does not exist"),
                        ([str(tmp_path)], "is a directory")):
        result = runner.invoke(_app({}), args)
        assert result.exit_code == 2, (args, result.output)
        assert words in " ".join(result.output.replace("\u2502", " ").split()), (args, result.output)


@UNCHECKED
def test_an_unchecked_typer_is_left_alone() -> None:
    code = ("import typer; typer.__version__ = '0.30.0'\n"
            "import gsvc_cli.cli\n"
            "from typer.core import _TyperParameter\n"
            "assert not getattr(_TyperParameter.get_runtime_param, '_gsvc_quick', False)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
