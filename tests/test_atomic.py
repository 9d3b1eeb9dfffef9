"""gsvc_cli.atomic: outputs appear whole or not at all, and never replace an input."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gsvc_cli.atomic import atomic_output, refuse_same_file
from gsvc_cli.errors import UsageError


def test_success_moves_temp_into_place_with_suffix(tmp_path: Path):
    target = tmp_path / "out.mp4"
    with atomic_output(target, overwrite=False) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != target
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_leaves_nothing(tmp_path: Path, exc: BaseException):
    target = tmp_path / "out.y4m"
    with pytest.raises(type(exc)), atomic_output(target, overwrite=False) as tmp:
        tmp.write_bytes(b"partial")
        raise exc
    assert list(tmp_path.iterdir()) == []


def test_existing_target_refused_unless_overwrite(tmp_path: Path):
    target = tmp_path / "out.y4m"
    target.write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists"), atomic_output(target, overwrite=False):
        pass
    assert target.read_bytes() == b"old"
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_failure_with_overwrite_keeps_old_file(tmp_path: Path):
    target = tmp_path / "out.y4m"
    target.write_bytes(b"old")
    with pytest.raises(ValueError), atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError
    assert target.read_bytes() == b"old"
    assert sorted(tmp_path.iterdir()) == [target]


def test_refuse_same_file(tmp_path: Path):
    source = tmp_path / "in.y4m"
    source.write_bytes(b"x")
    link = tmp_path / "link.y4m"
    link.symlink_to(source)
    with pytest.raises(UsageError, match="same file"):
        refuse_same_file(source, tmp_path / "other.y4m", source)
    with pytest.raises(UsageError, match="same file"):
        refuse_same_file(link, source)
    refuse_same_file(tmp_path / "new.y4m", source)  # no error


def test_directory_target_refused(tmp_path: Path):
    with pytest.raises(UsageError, match="directory"), atomic_output(tmp_path, overwrite=True):
        pass


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_leave_nothing(tmp_path: Path, signum: int):
    """A signal while the temp file is open removes it (it used to stay behind on SIGTERM). The
    child restores the default handler first: a test run under nohup passes SIGHUP on ignored,
    which gsvc rightly leaves ignored (next test)."""
    script = (
        "import os, signal, sys, time\n"
        "from gsvc_cli.atomic import atomic_output\n"
        f"signal.signal({int(signum)}, signal.SIG_DFL)\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'partial')\n"
        f"    os.kill(os.getpid(), {int(signum)})\n"
        "    time.sleep(30)\n"
    )
    target = tmp_path / "out.gsvc"
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "Terminated" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_ignored_sighup_stays_ignored(tmp_path: Path):
    """Under nohup (SIGHUP ignored) a hang-up does not stop the write: the output appears whole."""
    script = (
        "import os, signal, sys\n"
        "from gsvc_cli.atomic import atomic_output\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'whole')\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
    )
    target = tmp_path / "out.gsvc"
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"whole"
