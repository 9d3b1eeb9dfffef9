"""Chunked and parallel encoding (gsvc_cli/chunked, gsvc_cli/parallel): the same bytes with any
number of workers, resume after SIGTERM, nothing left behind, clear errors, loopback-only Ray.

Real content, kept small: 9 frames of the cuts clip cropped to 64x48, with its real cut at
frame 10 inside (frame 3 here): chunks 0-2, 3-5, 6-8 at --gop 4. Ray takes seconds to start, so
only two encodes use it, and each checks several things.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gsvc_cli.chunked.plan import detect_cuts, plan_chunks

ENCODE = ("--preset", "fast", "--gop", "4", "--bpp", "0.6", "-q")


@pytest.fixture(scope="module")
def clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cuts_qcif frames 7-15 cropped to 64x48 (a real cut at frame 3 of this clip)."""
    from gsvc_cli.video import Frame, open_video, open_writer

    out = tmp_path_factory.mktemp("clip") / "cuts_64x48_9f.y4m"
    with open_video(shared_data / "clips" / "cuts_qcif_62f.mp4", start=7, frames=9) as reader:
        info = reader.info.with_(width=64, height=48, frame_count=9)
        with open_writer(out, info) as writer:
            for frame in reader:
                y, u, v = frame.planes
                writer.write(Frame((y[48:96, 56:120].copy(), u[24:48, 28:60].copy(), v[24:48, 28:60].copy()),
                                   frame.pix_fmt, frame.color_matrix, frame.color_range))
    return out


LOCAL_ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # local Ray only


def gsvc(*args: object, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gsvc_cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**LOCAL_ENV, **(env or {})}, **kw)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.fixture(scope="module")
def serial(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The reference: the chunked encode in this process, no Ray."""
    out = tmp_path_factory.mktemp("serial") / "serial.gsvc"
    code, err = finish(gsvc("encode", clip, "-o", out, "--chunked", *ENCODE))
    assert code == 0, err
    assert list(out.parent.iterdir()) == [out]  # the work folder is gone
    return out.read_bytes()


# -- planning (no encoding) ----------------------------------------------------------------------


def test_cut_detector_finds_the_real_cuts(shared_data: Path):
    from gsvc_cli.video import open_video

    with open_video(shared_data / "clips" / "cuts_qcif_62f.mp4") as reader:
        cuts, count = detect_cuts(reader)
    assert (cuts, count) == ([10, 21, 31, 41, 51], 62)
    with open_video(shared_data / "clips" / "foreman_cif_300f_intra.mp4", frames=220) as reader:
        assert detect_cuts(reader)[0] == []  # the fast pan is no cut


def test_plan_starts_at_cuts_splits_long_shots_and_shares_the_overhead():
    plan = plan_chunks(130, [10, 21], gop=50, overhead_bytes=1001)
    assert [(c.start, c.count) for c in plan.chunks] == [(0, 10), (10, 11), (21, 36), (57, 36), (93, 37)]
    assert sum(c.overhead_bytes for c in plan.chunks) == 1001
    assert all(c.count <= 50 for c in plan.chunks)


# -- encodes ---------------------------------------------------------------------------------------


def _process_tree(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    return tree


def _listening(pids: set[int]) -> set[str]:
    """Local addresses of TCP sockets in LISTEN state owned by `pids` ("hex-ip:hex-port")."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                found.add(fields[1])
    return found


def _is_loopback(hex_address: str) -> bool:
    ip = hex_address.split(":")[0]
    if len(ip) == 8:  # IPv4, little-endian: 127.x.x.x ends in 7F
        return ip.endswith("7F")
    return ip == "0" * 31 + "1" or (ip[:24] == "0000000000000000FFFF0000" and ip.endswith("7F"))


def test_two_ray_workers_give_the_serial_bytes_on_loopback_only(clip: Path, serial: bytes, tmp_path: Path):
    """--workers 2, with chunk 2's worker killed once (it is retried): same bytes as serial, no
    listening socket beyond loopback in the whole process tree, nothing left behind."""
    out = tmp_path / "par.gsvc"
    proc = gsvc("encode", clip, "-o", out, "--workers", "2", *ENCODE,
                env={"GSVC_TEST_FAULT_CHUNK": f"2:crash:{tmp_path / 'crashed'}"})
    seen: set[str] = set()
    while proc.poll() is None:
        seen |= _listening(_process_tree(proc.pid))
        time.sleep(0.3)
    code, err = finish(proc)
    assert code == 0, err
    assert seen, "saw no listening socket at all: the check would not catch anything"
    assert {a for a in seen if not _is_loopback(a)} == set()
    assert (tmp_path / "crashed").exists()  # the fault did fire, and the retry recovered
    assert out.read_bytes() == serial
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crashed", "par.gsvc"]


def test_sigterm_keeps_only_the_work_folder_and_resume_gives_the_same_bytes(
        clip: Path, serial: bytes, tmp_path: Path):
    out = tmp_path / "out.gsvc"
    parts = tmp_path / ".out.gsvc.parts"
    proc = gsvc("encode", clip, "-o", out, "--workers", "2", *ENCODE)
    deadline = time.monotonic() + 600
    while not list(parts.glob("chunk-*.part")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 128 + signal.SIGTERM and err == "gsvc: terminated by SIGTERM\n", err
    assert [p.name for p in tmp_path.iterdir()] == [parts.name]  # no .gsvc, no temp file
    kept = sorted(p.name for p in parts.iterdir())
    assert "plan.json" in kept and any(k.startswith("chunk-") for k in kept)
    assert not any(k.endswith(".tmp") for k in kept)

    # Without --resume the folder is not silently thrown away.
    code, err = finish(gsvc("encode", clip, "-o", out, "--chunked", *ENCODE))
    assert code == 2 and "--resume" in err and err.count("\n") == 1

    proc = gsvc("encode", clip, "-o", out, "--chunked", "--resume", *ENCODE[:-1])
    code, err = finish(proc)
    assert code == 0, err
    assert "resumed from the work folder" in err
    assert out.read_bytes() == serial
    assert [p.name for p in tmp_path.iterdir()] == ["out.gsvc"]


def test_a_chunk_failing_twice_stops_with_one_line_naming_it(clip: Path, tmp_path: Path):
    """Serial here (Ray's retry of a lost worker is exercised above; its failing-twice message is
    the same line, checked by hand: see BENCHMARKS.md "Scaling")."""
    out = tmp_path / "out.gsvc"
    code, err = finish(gsvc("encode", clip, "-o", out, "--chunked", *ENCODE,
                            env={"GSVC_TEST_FAULT_CHUNK": "0"}))
    assert code == 1
    assert err.startswith("gsvc: error: chunk 0 (frames 0-2) failed twice: RuntimeError: injected fault")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".out.gsvc.parts"]
