"""The zygote: `python -m snakefleet.zygote --preload dspy,numpy --control-fd 3`.

Importing a heavy library (`import dspy` takes seconds) once per worker makes
every new or replacement worker slow to start. The zygote imports the
`--preload` modules once, then forks ready-made workers on request, so a new
worker is serving within milliseconds.

Protocol, on a SOCK_SEQPACKET unix socket (the control fd), one message per
packet, ASCII words:

    zygote -> supervisor   ready <pid> <preload seconds>
                           error <message>            (preload failed)
    supervisor -> zygote   spawn <worker_id> <max_frame_bytes>
                           + SCM_RIGHTS: the worker's stdin, stdout, stderr
    zygote -> supervisor   spawned <worker_id> <pid>
                           failed <worker_id> <message>

A worker is forked twice: the zygote forks a child, which forks the worker
and exits at once. The supervisor is a child subreaper, so the orphaned
worker is re-parented to the supervisor, which can then wait for it and read
its exit status exactly as for a worker it started itself. Only after the
re-parenting does the worker arm PR_SET_PDEATHSIG: a worker dies with its
supervisor, never with the short-lived intermediate child.

The zygote exits when the control socket closes and, through its own
PDEATHSIG, when the supervisor dies.
"""

from __future__ import annotations

import array
import ctypes
import importlib
import os
import signal
import socket
import sys
import time

PR_SET_PDEATHSIG = 1
MAX_FDS = 3
REPARENT_WAIT_S = 2.0


def _prctl_pdeathsig(sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _log(event: str, **fields: object) -> None:
    parts = " ".join(f"{k}={v}" for k, v in fields.items())
    sys.stderr.write(f"level=info src=zygote pid={os.getpid()} event={event} {parts}\n")
    sys.stderr.flush()


def _become_worker(
    fds: list[int], worker_id: str, max_frame_bytes: int, supervisor: int, ctl: socket.socket
) -> int:
    """In the grandchild: wait to be re-parented, arm PDEATHSIG, serve."""
    ctl.close()
    deadline = time.monotonic() + REPARENT_WAIT_S
    while os.getppid() != supervisor:
        if time.monotonic() > deadline:
            return 70
        time.sleep(0.0002)
    _prctl_pdeathsig(signal.SIGKILL)
    if os.getppid() != supervisor:  # the supervisor died in between
        return 70
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ["SNAKEFLEET_WORKER_ID"] = worker_id

    from snakefleet import worker

    in_fd, out_fd = worker.claim_stdio()
    import faulthandler

    faulthandler.enable()
    return worker.serve(in_fd, out_fd, worker_id, max_frame_bytes)


def _spawn(ctl: socket.socket, words: list[str], fds: list[int], supervisor: int) -> None:
    if len(words) != 3 or len(fds) != MAX_FDS:
        ctl.send(f"failed {words[1] if len(words) > 1 else '?'} bad spawn request".encode())
        return
    worker_id, max_frame_bytes = words[1], int(words[2])
    child = os.fork()
    if child == 0:
        # The intermediate child: fork the worker, report its pid, vanish.
        try:
            grandchild = os.fork()
            if grandchild == 0:
                code = 70
                try:
                    code = _become_worker(fds, worker_id, max_frame_bytes, supervisor, ctl)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            ctl.send(f"spawned {worker_id} {grandchild}".encode())
        except BaseException as e:  # noqa: BLE001 - report anything, then exit
            try:
                ctl.send(f"failed {worker_id} {type(e).__name__}: {e}".encode())
            finally:
                os._exit(1)
        os._exit(0)
    os.waitpid(child, 0)


def serve(ctl: socket.socket, preload: list[str], supervisor: int) -> int:
    t0 = time.monotonic()
    try:
        for name in preload:
            importlib.import_module(name)
        # The worker runtime itself is always preloaded.
        importlib.import_module("snakefleet.worker")
    except BaseException as e:  # noqa: BLE001 - a failed preload is reported, not raised
        ctl.send(f"error preload failed: {type(e).__name__}: {e}".encode())
        return 1
    ctl.send(f"ready {os.getpid()} {time.monotonic() - t0:.3f}".encode())
    _log("ready", preload=",".join(preload) or "-", seconds=f"{time.monotonic() - t0:.3f}")
    while True:
        fds_buf = array.array("i")
        try:
            msg, ancdata, _flags, _addr = ctl.recvmsg(256, socket.CMSG_SPACE(MAX_FDS * 4))
        except InterruptedError:
            continue
        if not msg:
            return 0
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds_buf.frombytes(data[: len(data) - (len(data) % fds_buf.itemsize)])
        fds = list(fds_buf)
        words = msg.decode(errors="replace").split()
        try:
            if words and words[0] == "spawn":
                _spawn(ctl, words, fds, supervisor)
            else:
                ctl.send(b"failed ? unknown request")
        finally:
            for fd in fds:
                os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    preload: list[str] = []
    control_fd = 3
    supervisor = os.getppid()
    i = 0
    while i < len(args):
        name = args[i]
        value = args[i + 1] if i + 1 < len(args) else ""
        if name == "--preload":
            preload = [m.strip() for m in value.split(",") if m.strip()]
        elif name == "--control-fd":
            control_fd = int(value)
        elif name == "--supervisor-pid":
            supervisor = int(value)
        else:
            print(f"snakefleet.zygote: unknown argument '{name}'", file=sys.stderr)
            return 2
        i += 2
    _prctl_pdeathsig(signal.SIGKILL)
    if os.getppid() != supervisor:
        return 70
    ctl = socket.socket(fileno=control_fd)
    sys.stdout = sys.stderr  # fd 1 is not a channel here either
    return serve(ctl, preload, supervisor)


if __name__ == "__main__":
    sys.exit(main())
