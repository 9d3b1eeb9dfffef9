"""Run chunk jobs on Ray: a private local runtime gsvc starts, or an existing cluster.

The local runtime (`--workers N`) is locked down, because Ray runs arbitrary code for whoever
reaches its ports and its token authentication is off by default:
- every Ray process listens on the loopback interface only (Ray's single-machine mode,
  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; checked after start-up, and refused otherwise);
- no dashboard; token authentication on (RAY_AUTH_MODE=token) with a fresh random token that
  only this process and its workers know (it lives in their environment, never on disk);
- its own temp folder, and it shuts down with the encode (and the folder is deleted).
Each worker gets one CPU and one compute thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)), so
N workers use N cores.

With an address (`--ray-address`, or RAY_ADDRESS) gsvc connects to an existing cluster instead;
securing it (token authentication, a trusted network) is its operator's job. gsvc must be
installed on its nodes. Workers read their frames themselves when every node sees the input (same
path, size and mtime); otherwise gsvc reads each chunk here and ships it through the object store.

Either way at most `2 x workers` chunks are in flight, so memory stays bounded. A task whose
worker dies, or that raises, is retried once (Ray's max_retries / retry_exceptions); a chunk that
fails twice stops the encode with ChunkFailed naming it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gsvc_cli.atomic import TERMINATING_SIGNALS, Terminated
from gsvc_cli.chunked.encode import ChunkFailed, ChunkJob, SourceSpec, encode_chunk
from gsvc_cli.chunked.parts import ChunkResult
from gsvc_cli.chunked.plan import Chunk
from gsvc_cli.errors import GsvcError, UsageError

WAIT_SECONDS = 0.5  # ray.wait blocks in C++: wake up this often so signals are handled promptly
_TOKEN: str | None = None  # one per process: Ray caches the token it loaded


def _local_token() -> str:
    global _TOKEN
    if _TOKEN is None:
        _TOKEN = secrets.token_hex(32)
    return _TOKEN


def _package_root() -> str:
    """The folder that holds gsvc_cli (so workers import this very copy of gsvc)."""
    return str(Path(__file__).resolve().parents[2])


def worker_env() -> dict[str, str]:
    """Environment every local worker needs: one compute thread, and this gsvc on its path."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = _package_root()
    if root not in parts:
        parts.insert(0, root)
    return {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(parts)}


def _run_chunk(job: ChunkJob) -> ChunkResult:
    """The Ray task body (module-level so workers import it instead of unpickling code)."""
    import torch

    torch.set_num_threads(1)
    return encode_chunk(job)


def _sees(spec: SourceSpec) -> bool:
    return spec.visible()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@contextlib.contextmanager
def _environment(changes: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the local runtime's processes inherit them)."""
    old = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _signals_after() -> Iterator[None]:
    """SIGTERM/SIGHUP during the block raise `Terminated` when it ends, not inside it.

    Ray's Cython calls check for signals and turn any exception but KeyboardInterrupt raised from
    a handler into a SystemError; so inside Ray calls a signal is only noted, then raised here.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = {}
    for sig in TERMINATING_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if got:
        raise Terminated(got[0])


def _check_reachable(address: str) -> None:
    """A one-line error for a HOST:PORT that nobody answers on (Ray itself retries for minutes,
    logging as it goes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", ray:// client addresses and the like: leave them to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise GsvcError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc})") from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # a broken install: ray is a dependency
        raise GsvcError("--workers/--ray-address need Ray, which is not installed",
                        hint='pip install -e ".[dev]" or pip install "ray>=2.52"') from exc
    return ray


class RayRunner:
    """A context manager: start (or connect to) Ray on enter, shut it down on exit."""

    def __init__(self, workers: int | None = None, address: str | None = None,
                 ship_frames: bool | None = None) -> None:
        """ship_frames: True sends every chunk's frames through the object store, False lets
        workers read the input, None (default) decides by asking every node whether it sees it."""
        if workers is not None and workers < 1:
            raise UsageError(f"--workers {workers}: must be at least 1")
        if workers is None and not address:
            raise UsageError("give --workers N (a local Ray runtime) or --ray-address ADDR")
        self.workers = workers
        self.address = address or None
        self.local = self.address is None
        self.ship_frames = ship_frames
        self.description = ""
        self._ray: Any = None
        self._temp: str | None = None
        self._env_stack = contextlib.ExitStack()

    # -- start and stop ---------------------------------------------------------------------
    def __enter__(self) -> RayRunner:
        try:
            with _signals_after():
                self._start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _start(self) -> None:
        if self.local:
            # Before Ray is imported: its single-machine switch is read at import time.
            self._env_stack.enter_context(_environment({
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": _local_token(), "RAY_USAGE_STATS_ENABLED": "0", **worker_env()}))
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        ray = self._ray = _import_ray()
        if self.local:
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False  # in case Ray was imported before the switch
            self._temp = tempfile.mkdtemp(prefix="gsvc-ray-")
            try:
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                         _temp_dir=self._temp, log_to_driver=False, logging_level=logging.ERROR,
                         configure_logging=True)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise GsvcError(f"cannot start a local Ray runtime: {first}") from exc
            self._check_local()
            self.description = f"{self.workers} worker{'s' * (self.workers != 1)}, local Ray"
        else:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR,
                         runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})
            except Exception as exc:
                raise GsvcError(f"cannot connect to the Ray cluster at {self.address}: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self.workers = min(self.workers or cpus, max(1, cpus))
            nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
            self.description = f"{self.workers} workers on a Ray cluster of {nodes} node(s), {self.address}"

    def _check_local(self) -> None:
        """Refuse to run if the runtime came up reachable from outside or without token auth."""
        ray = self._ray
        node_ip = ray.util.get_node_ip_address()
        gcs_host = ray.get_runtime_context().gcs_address.rsplit(":", 1)[0]
        if not (_is_loopback(node_ip) and _is_loopback(gcs_host)):
            raise GsvcError(f"the local Ray runtime came up on {node_ip}, not on loopback only: refusing "
                            "to run it")
        from ray._raylet import AuthenticationMode, get_authentication_mode

        if get_authentication_mode() != AuthenticationMode.TOKEN:
            raise GsvcError("the local Ray runtime came up without token authentication: refusing to run it")

    def __exit__(self, *exc: object) -> None:
        try:
            if self._ray is not None and self._ray.is_initialized():
                self._ray.shutdown()
        finally:
            self._env_stack.close()
            if self._temp is not None:
                shutil.rmtree(self._temp, ignore_errors=True)
                self._temp = None

    # -- running ----------------------------------------------------------------------------
    def _workers_see(self, source: SourceSpec) -> bool:
        """True when every live node sees the input file as planned (local: always)."""
        if self.local:
            return True
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(num_cpus=0, max_retries=0)(_sees)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(source) for n in ray.nodes() if n.get("Alive")]
        try:
            return all(ray.get(refs, timeout=60))
        except Exception:
            return False

    def run(self, chunks: list[Chunk], make_job: Callable[[Chunk, bool], ChunkJob]
            ) -> Iterator[ChunkResult]:
        if not chunks:
            return
        ray = self._ray
        task = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=True)(_run_chunk)
        ship = (self.ship_frames if self.ship_frames is not None
                else not self._workers_see(make_job(chunks[0], False).source))
        limit = 2 * max(1, self.workers or 1)
        queue = list(chunks)
        in_flight: dict[Any, Chunk] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    chunk = queue.pop(0)
                    job = make_job(chunk, ship)
                    with _signals_after():
                        in_flight[task.remote(ray.put(job) if ship else job)] = chunk
                    del job
                with _signals_after():
                    ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    chunk = in_flight.pop(ref)
                    with _signals_after():
                        result = self._result(ref, chunk)
                    yield result
        finally:
            # On a cluster, stop what is still running. The local runtime needs no cancel: its
            # shutdown (__exit__) stops every worker, and a forced cancel whose task completes at
            # that moment can abort the driver inside Ray ("Tried to complete task that was not
            # pending", seen once in CI on a SIGTERM), which turned a clean exit 143 into exit 1.
            for ref in in_flight if not self.local else ():
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def _result(self, ref: Any, chunk: Chunk) -> ChunkResult:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, GsvcError):
                raise ChunkFailed(f"{chunk.name} failed twice: {cause}") from None
            text = str(cause).strip().splitlines()
            raise ChunkFailed(f"{chunk.name} failed twice: {type(cause).__name__}: "
                              f"{text[0] if text else ''}".rstrip(": ")) from None
        except ray.exceptions.RayError as exc:
            raise ChunkFailed(f"{chunk.name} failed twice: its Ray worker was lost "
                              f"({type(exc).__name__})") from None
