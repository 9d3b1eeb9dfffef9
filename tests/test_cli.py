"""The command line itself: version, help, error convention."""

from helpers import run_gsvc_cli

from gsvc_cli import __version__


def test_version():
    result = run_gsvc_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"gsvc {__version__}"


def test_unknown_command_is_usage_error():
    result = run_gsvc_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
