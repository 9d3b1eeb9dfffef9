"""The command line itself: version, help, error convention."""

import subprocess
import sys

from gsvc_cli import __version__


def run_gsvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gsvc_cli", *args], capture_output=True, text=True)


def test_version():
    result = run_gsvc("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"gsvc {__version__}"


def test_unknown_command_is_usage_error():
    result = run_gsvc("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
