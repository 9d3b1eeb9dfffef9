"""completions/: generated from the command tree, current, and working in each shell."""

import enum
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from gsvc_cli import docs_gen

ROOT = Path(__file__).resolve().parents[1]
STALE = f"is out of date with the gsvc commands; regenerate it with: {docs_gen.REGENERATE_COMMAND}"
SCRIPTS = (docs_gen.BASH_PATH, docs_gen.ZSH_PATH, docs_gen.FISH_PATH)


class Preset(enum.StrEnum):
    fast = "fast"
    slow = "slow"


def sample_app() -> typer.Typer:
    app = typer.Typer(name="gsvc", add_completion=False,
                      context_settings={"help_option_names": ["-h", "--help"]})

    @app.callback()
    def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
        """Splat codec."""

    @app.command()
    def encode(
        source: Path = typer.Argument(..., help="Input video."),
        output: Path = typer.Option(..., "-o", "--output", help="Where to write."),
        bpp: float = typer.Option(0.4, "--bpp", help="Target bits per pixel."),
        preset: Preset = typer.Option(Preset.slow, "--preset", help="Speed: it's a trade-off \\[sic]."),
    ) -> None:
        """Encode a video."""

    @app.command()
    def info(source: Path = typer.Argument(..., help="A .gsvc file.")) -> None:
        """Describe a file."""

    return app


@pytest.fixture(scope="module")
def sample_scripts(tmp_path_factory) -> dict[Path, Path]:
    folder = tmp_path_factory.mktemp("completions")
    written = {}
    for path, text in docs_gen.generate(sample_app(), "1.0").items():
        if path in SCRIPTS:
            written[path] = folder / path.name
            written[path].write_text(text)
    return written


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_committed_completion_is_current(path):
    expected = docs_gen.generate()[path]
    committed = (ROOT / path).read_text() if (ROOT / path).exists() else ""
    assert committed == expected, f"{path} {STALE}"


def test_generation_does_not_depend_on_the_hash_seed():
    env = {**os.environ, "PYTHONHASHSEED": "2"}
    run = subprocess.run([sys.executable, "-m", "gsvc_cli.docs_gen", "--check"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def bash_complete(script: Path, words: list[str], cwd: Path) -> list[str]:
    """Run the bash completion function as bash would for `words` (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in words)
    program = (f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _gsvc; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    run = subprocess.run(["bash", "--norc", "-c", program], cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return [line for line in run.stdout.splitlines() if line]


def test_bash_script_completes_commands_options_choices_and_files(sample_scripts, tmp_path):
    script = sample_scripts[docs_gen.BASH_PATH]
    (tmp_path / "clip.y4m").write_text("")
    assert bash_complete(script, ["gsvc", ""], tmp_path) == ["encode", "info"]
    assert bash_complete(script, ["gsvc", "--d"], tmp_path) == ["--debug"]
    assert bash_complete(script, ["gsvc", "encode", "--p"], tmp_path) == ["--preset"]
    assert bash_complete(script, ["gsvc", "encode", "--preset", ""], tmp_path) == ["fast", "slow"]
    assert bash_complete(script, ["gsvc", "encode", "--bpp", ""], tmp_path) == []  # a number: no files
    assert bash_complete(script, ["gsvc", "encode", "-o", "cl"], tmp_path) == ["clip.y4m"]
    assert bash_complete(script, ["gsvc", "--debug", "info", "c"], tmp_path) == ["clip.y4m"]


def test_bash_script_offers_every_registered_command_and_option(tmp_path):
    from gsvc_cli.cli import app

    root = docs_gen.describe_app(app)
    script = ROOT / docs_gen.BASH_PATH
    assert bash_complete(script, ["gsvc", ""], tmp_path) == [c.name for c in root.subcommands], STALE
    assert "--version" in bash_complete(script, ["gsvc", "--"], tmp_path)
    for command in root.subcommands:
        offered = bash_complete(script, ["gsvc", command.name, "-"], tmp_path)
        for option in command.options:
            assert set(option.flags) <= set(offered), f"{command.name}: {option.flags} not completed; {STALE}"


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")
def test_zsh_script_parses(sample_scripts):
    for script in (sample_scripts[docs_gen.ZSH_PATH], ROOT / docs_gen.ZSH_PATH):
        run = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


def test_zsh_script_lists_commands_and_specs(sample_scripts):
    text = sample_scripts[docs_gen.ZSH_PATH].read_text()
    assert text.startswith("#compdef gsvc\n")
    assert "'encode:Encode a video.'" in text and "'info:Describe a file.'" in text
    assert "'(-o --output)'{-o,--output}'[Where to write]:PATH:_files'" in text
    assert "--preset'[Speed\\: it'\\''s a trade-off \\[sic\\]]:{fast|slow}:(fast slow)'" in text


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (apt-get install fish)")
def test_fish_script_completes_commands_and_choices(sample_scripts):
    script = sample_scripts[docs_gen.FISH_PATH]

    def complete(line: str) -> list[str]:
        run = subprocess.run(["fish", "--no-config", "-c", f"source '{script}'; complete -C '{line}'"],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return [entry.split("\t")[0] for entry in run.stdout.splitlines()]

    assert complete("gsvc ") == ["encode", "info"]
    assert complete("gsvc encode --preset ") == ["fast", "slow"]
    assert "--output" in complete("gsvc encode --")
    committed = subprocess.run(["fish", "--no-execute", str(ROOT / docs_gen.FISH_PATH)],
                               capture_output=True, text=True)
    assert committed.returncode == 0, committed.stderr


def test_bash_scripts_parse(sample_scripts):
    for script in (sample_scripts[docs_gen.BASH_PATH], ROOT / docs_gen.BASH_PATH):
        run = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
