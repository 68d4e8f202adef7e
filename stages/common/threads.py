"""CPU threads of the compute stages: pipeline processes running at once share the cores.

`dvc queue start -j N` runs N experiments at once, and each stage's torch would start as many threads as the
machine has cores: N times too many, and threads that wait for each other are many times slower (measured on 2
cores: 10-30x per training step for two runs). So each compute process registers itself in a per-user folder
(`<tmp>/ja-textclf-<user>/running/<pid>`) and uses its share of the threads a lone run would use (torch's
default, i.e. the cores it may run on, or OMP_NUM_THREADS): budget // live processes, at least 1. A process
re-checks the share from its main thread during long loops (training steps, embed and predict batches), so
runs that finish hand their cores back. `JA_TEXTCLF_THREADS=n` fixes the count of every process instead (an
environment variable, not a param: it changes speed, not what is computed, and a param would invalidate
DVC's stage caches). Files of processes that died without unregistering (kill -9) are removed by the next look.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from stages.common.errors import UserError

ENV_VAR = "JA_TEXTCLF_THREADS"
RECHECK_SECONDS = 5.0
MARKER = "ja-textclf compute process"  # first line of every registration file: only such files are ever removed
_default_threads: Optional[int] = None


def default_threads() -> int:
    """What a lone run uses: torch's default, read once before this module changes it (torch is imported
    here, not at the top, so `ja-textclf-predict` refuses bad input without loading it)."""
    global _default_threads
    if _default_threads is None:
        import torch

        _default_threads = torch.get_num_threads()
    return _default_threads


def fixed_threads(environ=os.environ) -> Optional[int]:
    """JA_TEXTCLF_THREADS as a number, None when unset or empty."""
    value = environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{ENV_VAR}={value!r}: not a positive whole number; set it to the CPU threads each pipeline "
                        f"process may use (e.g. {ENV_VAR}=2), or unset it to share the cores between concurrent runs")
    return int(value)


def registry_dir() -> Optional[Path]:
    """The per-user folder of registrations, or None if it is not ours (another user created it in a shared
    temp folder): then this process does not share rather than trust that user's files."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    folder = Path(tempfile.gettempdir()) / f"ja-textclf-{user}" / "running"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = folder.parent.lstat()
    except OSError:
        return None
    if hasattr(os, "getuid") and (owner.st_uid != os.getuid() or not folder.parent.is_dir()
                                  or folder.parent.is_symlink()):
        return None
    return folder


def process_stat(pid: int) -> tuple[str, str]:
    """(state, start time in clock ticks) from /proc (Linux; empty elsewhere): a zombie has finished, and a
    different start time means the pid was reused by another program."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return "", ""
    return fields[0], fields[19]


def is_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid now belongs to another user
        return False
    state, now_started = process_stat(pid)
    return state != "Z" and (not started or not now_started or now_started == started)


def live_processes(folder: Path) -> list[int]:
    """Pids of the registered processes still running, sorted; registrations of dead ones are removed."""
    alive = []
    for entry in folder.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            lines = entry.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        if not lines or lines[0] != MARKER:
            continue  # not written by this module: never counted, never touched
        pid = int(entry.name)
        if is_alive(pid, lines[1] if len(lines) > 1 else ""):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return sorted(alive)


@dataclass(frozen=True)
class Share:
    threads: int
    processes: int  # registered compute processes running now, this one included
    budget: int
    fixed: bool = False

    def note(self) -> str:
        if self.processes == 1:
            return f"no other pipeline process now: back to {self.threads} CPU thread{'s' * (self.threads > 1)}"
        return (f"{self.processes} pipeline processes share {self.budget} CPU threads: {self.threads} here "
                f"(set {ENV_VAR} to fix the count)")


def fair_share(budget: int, pids: list[int], pid: int) -> int:
    """budget // processes, the remainder to the lowest pids (so the shares add up to the budget), at least 1."""
    processes = len(pids) + (pid not in pids)
    rank = pids.index(pid) if pid in pids else processes - 1
    return max(1, budget // processes + (rank < budget % processes))


def set_threads(threads: int) -> Callable[[], None]:
    """Torch's intra-op threads plus numpy/scipy's BLAS (scikit-learn); returns what puts the earlier counts
    back. torch.set_num_threads sets the calling thread's OpenMP count: call it from the main thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # installed with scikit-learn; without it BLAS keeps its own count
        return lambda: torch.set_num_threads(before)
    limiter = threadpool_limits(limits=threads, user_api="blas")

    def restore() -> None:  # torch last: an OpenMP-built BLAS may share its OpenMP runtime
        limiter.restore_original_limits()
        torch.set_num_threads(before)

    return restore


class CoreShare:
    """This process's registration and thread count (one per compute process, made by `shares_cores`)."""

    def __init__(self, folder: Optional[Path], budget: Optional[int] = None, pid: Optional[int] = None,
                 fixed: Optional[int] = None, announce: Callable[[str], None] = lambda _: None):
        self.folder, self.pid, self.fixed = folder, pid or os.getpid(), fixed
        self._budget = budget
        self.announce = announce
        self.applied: Optional[Share] = None
        self.checked = 0.0
        self.undo: Optional[Callable[[], None]] = None  # back to the counts from before the first change

    def register(self) -> None:
        if self.folder is None:
            return
        staged = self.folder / f".{self.pid}.tmp"
        try:
            staged.write_text(f"{MARKER}\n{process_stat(self.pid)[1]}\n", encoding="utf-8")
            os.replace(staged, self.folder / str(self.pid))  # whole, so a reader never sees half a file
        except OSError:  # a full or read-only temp folder: run unshared rather than fail the stage
            self.folder = None

    def unregister(self) -> None:
        if self.folder is not None:
            (self.folder / str(self.pid)).unlink(missing_ok=True)

    @property
    def budget(self) -> int:
        return self._budget if self._budget is not None else default_threads()

    def share(self) -> Share:
        if self.fixed is not None:
            return Share(self.fixed, 1, self.fixed, fixed=True)
        try:
            pids = live_processes(self.folder) if self.folder is not None else [self.pid]
        except OSError:  # the folder was removed meanwhile (a temp cleaner): as if alone
            pids = [self.pid]
        return Share(fair_share(self.budget, pids, self.pid), len(pids) + (self.pid not in pids), self.budget)

    def apply(self) -> Share:
        """Set the share if it changed; a lone run keeps its defaults untouched. A note whenever the count
        differs from a lone run's, and when it changes back."""
        share = self.share()
        self.checked = time.monotonic()
        before = self.applied.threads if self.applied else (None if share.fixed else self.budget)
        if share.threads != before:
            undo = set_threads(share.threads)
            self.undo = self.undo or undo
            if not share.fixed:
                self.announce(share.note())
        self.applied = share
        return share

    def refresh(self) -> None:
        """Re-check at most every RECHECK_SECONDS, from the main thread only (the one whose count torch uses)."""
        if (time.monotonic() - self.checked >= RECHECK_SECONDS
                and threading.current_thread() is threading.main_thread()):
            self.apply()

    def restore(self) -> None:
        """The counts from before (for a stage run inside another program, such as the tests)."""
        if self.undo is not None:
            self.undo()
            self.undo = None


ACTIVE: Optional[CoreShare] = None  # the running stage's, set by shares_cores


def refresh() -> None:
    """Called between steps and batches by the library; does nothing outside a stage (tests, notebooks)."""
    if ACTIVE is not None:
        ACTIVE.refresh()


def note(message: str) -> None:
    from tqdm.auto import tqdm  # keeps progress bars whole; stderr, as predict's stdout may be its output

    tqdm.write(f"note: {message}", file=sys.stderr)


def shares_cores(main: Callable[[], None]) -> Callable[[], None]:
    """Decorate a compute stage's main() (inside stage_entry, so a bad JA_TEXTCLF_THREADS is a one-line error):
    register, apply the share, unregister when main returns or fails."""

    @functools.wraps(main)
    def run() -> None:
        global ACTIVE
        share = CoreShare(registry_dir(), fixed=fixed_threads(), announce=note)
        share.register()
        ACTIVE = share
        try:
            if "torch" in sys.modules:  # else (predict) at the first batch, after main has imported torch
                share.apply()
            main()
        finally:
            ACTIVE = None
            share.unregister()
            share.restore()

    return run


def before_torchrun() -> None:
    """The launcher re-executes itself as torchrun, whose ranks each register: leave the registry, and hand the
    ranks this machine's budget (torchrun would otherwise set OMP_NUM_THREADS=1 for them)."""
    if ACTIVE is not None:
        ACTIVE.unregister()
    os.environ.setdefault("OMP_NUM_THREADS", str(default_threads()))
