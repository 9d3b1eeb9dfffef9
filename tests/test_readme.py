"""The README is the front door: its test command must be the one CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_block_after(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"no ```sh block after {heading!r} in README.md"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command():
    command = _readme_block_after("## Run the tests")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines, f"README test command {command!r} is not a line of .ci/run"
