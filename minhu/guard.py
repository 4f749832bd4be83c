"""`python minhu/guard.py CMD…`: runs CMD so that nothing of it outlives `minhu run` (Linux).

`minhu/stack.py` starts each server (the action server, Rasa) through this guard, as the leader of a new
process group. The guard

* asks the kernel for SIGTERM when its parent dies (`prctl(PR_SET_PDEATHSIG)`), even by `kill -9`, and exits
  at once if the parent is already gone by then (MINHU_GUARD_PARENT is the pid it expects);
* starts CMD in its process group, with SIGKILL as CMD's own parent-death signal, and adopts CMD's orphans
  (`PR_SET_CHILD_SUBREAPER`) so that it reaps them itself: the machine's init may take seconds to;
* on SIGTERM, SIGINT or SIGHUP passes SIGTERM on to CMD and gives it GRACE_S seconds to stop (ORPHAN_GRACE_S
  when the parent is gone), then SIGKILL;
* once CMD has exited, kills whatever is left in the group: the action server's Sanic workers and
  multiprocessing helpers are CMD's children, and they do not die with their parent by themselves;
* exits with CMD's exit code (128 + the signal if a signal ended it).

Standard library only, no imports of the app: it runs before anything else and must not fail on its own.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 10.0  # to stop when `minhu run` asks
ORPHAN_GRACE_S = 2.0  # to stop when `minhu run` is gone: nobody waits for a tidy shutdown


def _prctl(option: int, value: int) -> None:
    """prctl(2) on Linux; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def die_with_parent(sig: int) -> None:
    """The calling process gets `sig` when the thread that started it exits (Linux; elsewhere nothing)."""
    _prctl(PR_SET_PDEATHSIG, sig)


def _is_zombie(pid: int) -> bool:
    """True for a process that has exited and waits to be reaped (it holds no port and no memory)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone already


def group_members(pgid: int) -> list[int]:
    """The live pids in process group `pgid`, except this process. Zombies do not count: they have exited,
    and whether they are reaped at once is up to their parent (init, for an orphan)."""
    members: list[int] = []
    if not os.path.isdir("/proc"):
        return members
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if os.getpgid(int(entry)) == pgid and not _is_zombie(int(entry)):
                    members.append(int(entry))
            except OSError:
                continue
    return members


def reap_orphans() -> None:
    """Reap the adopted orphans that have exited (this process is their subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_group_leftovers() -> None:
    pgid = os.getpgrp()
    for _ in range(50):
        reap_orphans()
        members = group_members(pgid)
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
        time.sleep(0.1)
    reap_orphans()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: guard.py CMD [ARG…]", file=sys.stderr)
        return 2
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # a group of its own, so the leftovers it kills are only CMD's
    die_with_parent(signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    expected_parent = os.environ.pop("MINHU_GUARD_PARENT", "")
    if expected_parent and os.getppid() != int(expected_parent):
        return 1  # the parent died before we asked to be told: nothing to run for

    child: subprocess.Popen[bytes] | None = None
    asked_at: list[float] = []  # when the first stop signal came

    def orphaned() -> bool:
        return bool(expected_parent) and os.getppid() != int(expected_parent)

    def stop(signum: int, _frame: object) -> None:
        if not asked_at:
            asked_at.append(time.monotonic())
            why = "minhu run is gone" if orphaned() else "asked to stop"
            print(
                f"guard: signal {signum} ({why}): stopping {' '.join(argv[:3])}", file=sys.stderr, flush=True
            )
            if child is not None and child.poll() is None:
                child.terminate()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    # This process is single-threaded, so a preexec_fn is safe here.
    child = subprocess.Popen(argv, preexec_fn=lambda: die_with_parent(signal.SIGKILL))
    if asked_at:  # a signal came while the child was starting
        child.terminate()
    while True:
        try:
            code = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            # The grace is chosen here, not in the handler: `minhu run`'s launcher thread may end (and the
            # kernel send the signal) a moment before the rest of a `kill -9`-ed process, while the parent pid
            # still looks alive.
            if asked_at and time.monotonic() > asked_at[0] + (ORPHAN_GRACE_S if orphaned() else GRACE_S):
                child.kill()
    kill_group_leftovers()
    if asked_at:
        took = time.monotonic() - asked_at[0]
        print(f"guard: stopped with code {code} {took:.1f} s after the signal", file=sys.stderr, flush=True)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
