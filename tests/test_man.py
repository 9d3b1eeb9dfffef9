"""man/gsvc.1: generated from the command tree, current, complete, and valid roff."""

import enum
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from gsvc_cli import docs_gen

ROOT = Path(__file__).resolve().parents[1]
STALE = f"is out of date with the gsvc commands; regenerate it with: {docs_gen.REGENERATE_COMMAND}"
REQUIRED_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
                     "ENVIRONMENT", "EXAMPLES", "SEE ALSO"]
KNOWN_MACROS = {"TH", "SH", "SS", "PP", "TP", "RS", "RE", "nf", "fi", "br", "B", "I", "BR", "IR"}


class Preset(enum.StrEnum):
    fast = "fast"
    slow = "slow"


def sample_app() -> typer.Typer:
    """A small app using every feature the generator must handle."""
    app = typer.Typer(name="gsvc", rich_markup_mode="rich", add_completion=False,
                      context_settings={"help_option_names": ["-h", "--help"]})

    @app.callback()
    def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
        """Splat codec."""

    @app.command()
    def encode(
        source: Path = typer.Argument(..., help="Input [bold]video[/bold]."),
        output: Path = typer.Option(..., "-o", "--output", help="Where to write."),
        bpp: float = typer.Option(0.4, "--bpp", help="Target bits per pixel."),
        preset: Preset = typer.Option(Preset.slow, "--preset", help="Speed trade-off."),
        overwrite: bool = typer.Option(False, "-y/-n", "--overwrite/--no-overwrite", help="Replace."),
    ) -> None:
        """Encode a video.

        Fits [italic]every[/italic] frame
        with splats.

        Examples:
          gsvc encode in.y4m -o out.gsvc --bpp 0.4
          gsvc encode in.y4m -o out.gsvc --preset fast  # quicker, larger
        """

    return app


def structural_problems(text: str) -> list[str]:
    """Pure-Python checks a man page must pass even where no roff linter is installed."""
    problems = []
    lines = text.splitlines()
    body = [line for line in lines if not line.startswith('.\\"')]
    if not body or not body[0].startswith(".TH GSVC 1 "):
        problems.append("first line after comments is not .TH GSVC 1")
    sections = [line[4:].strip('"') for line in lines if line.startswith(".SH ")]
    if sections != REQUIRED_SECTIONS:
        problems.append(f"sections are {sections}, want {REQUIRED_SECTIONS}")
    for number, line in enumerate(lines, 1):
        if line.startswith(".") and not line.startswith('.\\"'):
            macro = line[1:].split()[0] if line[1:].split() else ""
            if macro not in KNOWN_MACROS:
                problems.append(f"line {number}: unknown macro {line!r}")
        if line.startswith("'"):
            problems.append(f"line {number}: starts with a control character: {line!r}")
        if line != line.rstrip():
            problems.append(f"line {number}: trailing whitespace")
        if not line.startswith('.\\"') and re.search(r"\\(?![-&efIBRP\\(])", line):
            problems.append(f"line {number}: unexpected escape: {line!r}")
    if lines.count(".nf") != lines.count(".fi") or lines.count(".RS") != lines.count(".RE"):
        problems.append("unbalanced .nf/.fi or .RS/.RE")
    return problems


def test_committed_man_page_is_current():
    expected = docs_gen.generate()[docs_gen.MAN_PATH]
    committed = (ROOT / docs_gen.MAN_PATH).read_text() if (ROOT / docs_gen.MAN_PATH).exists() else ""
    assert committed == expected, f"{docs_gen.MAN_PATH} {STALE}"


def test_every_registered_command_and_option_is_in_the_man_page():
    from gsvc_cli.cli import app

    text = (ROOT / docs_gen.MAN_PATH).read_text()
    root = typer.main.get_command(app)
    ctx = root.make_context("gsvc", [], resilient_parsing=True)
    commands = [(None, root, ctx)]
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        commands.append((name, command, command.make_context(name, [], parent=ctx, resilient_parsing=True)))
    for name, command, command_ctx in commands:
        if name is not None:
            assert f'.SS "gsvc {docs_gen.roff_escape(name)}"' in text, f"no section for {name}; {STALE}"
        for param in command.get_params(command_ctx):
            for spelling in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
                if param.param_type_name == "option":
                    assert f"\\fB{docs_gen.roff_escape(spelling)}\\fR" in text, (
                        f"option {spelling} of {name or 'gsvc'} missing; {STALE}")


def test_committed_man_page_is_well_formed():
    assert structural_problems((ROOT / docs_gen.MAN_PATH).read_text()) == []


def test_sample_app_man_page_documents_options_defaults_and_examples():
    text = docs_gen.generate(sample_app(), "1.2.3")[docs_gen.MAN_PATH]
    assert structural_problems(text) == []
    assert '.TH GSVC 1 "" "gsvc 1.2.3"' in text
    assert '.SS "gsvc encode"' in text
    assert "\\fB\\-o\\fR, \\fB\\-\\-output\\fR \\fIPATH\\fR" in text
    assert "Target bits per pixel. [default: 0.4]" in text
    assert "\\fB\\-\\-preset\\fR \\fI{fast|slow}\\fR" in text and "[default: slow]" in text
    assert "\\fB\\-y\\fR, \\fB\\-\\-overwrite\\fR, \\fB\\-n\\fR, \\fB\\-\\-no\\-overwrite\\fR" in text
    assert "[default: \\-\\-no\\-overwrite]" in text
    assert "\\fB\\-h\\fR, \\fB\\-\\-help\\fR" in text  # the app's help_option_names are honoured
    assert "Fits every frame with splats." in text  # markup stripped, lines joined
    assert "[bold]" not in text and "[italic]" not in text
    examples = text.split(".SH EXAMPLES", 1)[1]
    assert "gsvc encode in.y4m \\-o out.gsvc \\-\\-bpp 0.4" in examples
    assert "quicker, larger" in examples
    assert "Examples:" not in text  # the paragraph went to EXAMPLES, not the description


def test_split_help_follows_the_examples_convention():
    summary, description, examples = docs_gen.split_help(
        "Decode a file.\n\nMore [b]detail[/b].\n\nExamples:\n  gsvc decode a.gsvc -o a.y4m\n"
        "  gsvc decode a.gsvc -o a.mp4  # to mp4\n")
    assert summary == "Decode a file."
    assert description == ("More detail.",)
    assert examples == (("gsvc decode a.gsvc -o a.y4m", ""), ("gsvc decode a.gsvc -o a.mp4", "to mp4"))


def test_roff_escape_protects_control_lines_and_backslashes():
    assert docs_gen.roff_escape(".gsvc files") == "\\&.gsvc files"
    assert docs_gen.roff_escape("a\\b -x") == "a\\eb \\-x"


def test_output_is_deterministic():
    assert docs_gen.generate(sample_app(), "1.0") == docs_gen.generate(sample_app(), "1.0")


def _lint(text: str, tmp_path: Path) -> list[str]:
    page = tmp_path / "gsvc.1"
    page.write_text(text)
    messages = []
    if shutil.which("groff"):
        run = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                             capture_output=True, text=True)
        messages += [f"groff: {line}" for line in run.stderr.splitlines()]
        assert run.returncode == 0, run.stderr
    if shutil.which("mandoc"):
        run = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", str(page)],
                             capture_output=True, text=True)
        # The page has no date on purpose: a date from the clock would make regeneration differ.
        messages += [f"mandoc: {line}" for line in (run.stdout + run.stderr).splitlines()
                     if line and "missing date" not in line]
    return messages


@pytest.mark.skipif(not (shutil.which("groff") or shutil.which("mandoc")),
                    reason="neither groff nor mandoc is installed (apt-get install groff-base mandoc)")
@pytest.mark.parametrize("which", ["committed", "sample"])
def test_roff_linters_accept_the_page(which, tmp_path):
    if which == "committed":
        text = (ROOT / docs_gen.MAN_PATH).read_text()
    else:
        text = docs_gen.generate(sample_app(), "1.0")[docs_gen.MAN_PATH]
    assert _lint(text, tmp_path) == []
