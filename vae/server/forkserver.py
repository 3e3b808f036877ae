"""A warm process that has imported PyTorch and the trainer, from which local training jobs fork at once.

Why: a fresh `python -m vae train` spends seconds importing torch and torch._dynamo (torch.optim imports
it) before its first step, and a visitor waits through it. Forked from a process that already holds them,
a job skips all of that; it is still one process per job, running the same `vae.cli.main(argv)` as the
command line, with its stdin, stdout and stderr connected as the runner connects a fresh process.

Why not multiprocessing's 'forkserver' context: every process it starts first re-imports the parent's
`__main__`, and inside Streamlit that is the app's own script (app.py), which a job must never run again
(the bug that made jobs plain command lines in the first place). So this module is a small fork server of
the same design, on the standard library's pieces: a Unix socket passing file descriptors (socket.send_fds),
os.fork, os.waitpid.

- The warm process imports, and starts no thread: no torch operation runs in it (the thread pools of
  OpenMP and BLAS are made in each job, by torch.set_num_threads), and OpenBLAS is kept from starting
  its threads at import. It checks that it is alone before every fork and refuses to fork otherwise.
- Protocol, over a SOCK_SEQPACKET pair: the warm process says {"ready": threads} once it has imported
  everything; the server sends {"argv": [...]} with the job's three file
  descriptors; the warm process answers {"pid": n} (or {"error": …}), and {"exited": n, "returncode": r}
  when the job ends (r < 0: killed by signal -r, as subprocess reports it).
- The server signals a job directly by its pid (terminate, kill). If the warm process dies, its jobs are
  killed and end as failed; the next job starts a new warm process.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback

PRELOAD = ("torch", "torch._dynamo", "vae.cli", "vae.training_run", "vae.train", "vae.data", "vae.model")
MESSAGE_BYTES = 64 * 1024


def thread_count() -> int:
    """Threads in this process as the kernel sees them (C threads included); Python's count elsewhere."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


# --- the warm process ----------------------------------------------------------------------------------

def _run_job(argv: list[str]) -> int:
    """In the forked child, with fds 0, 1, 2 already the job's: what `python -m vae <argv>` would do.
    sys.stdin, sys.stdout and sys.stderr are the warm process's, unread and unwritten, on those fds."""
    sys.argv = ["python -m vae", *argv]
    from vae import cli

    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's error() raises it with the code
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def _fork_job(control: socket.socket, wake_r: int, wake_w: int, argv: list[str], fds: list[int]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (control.fileno(), wake_r, wake_w):
                os.close(fd)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in set(fds) - {0, 1, 2}:
                os.close(fd)
            code = _run_job(argv)
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    return pid


def _send(control: socket.socket, message: dict) -> None:
    control.send(json.dumps(message).encode())


def serve(control: socket.socket) -> None:
    """The warm process's loop: fork a job per request, report each job's end; return when the server
    has closed its end of the socket."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD writes to the wakeup fd
    running: set[int] = set()
    while True:
        readable, _, _ = select.select([control, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        while running:  # reap every job that has ended
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            running.discard(pid)
            _send(control, {"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})
        if control not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(control, MESSAGE_BYTES, 3)
        except ConnectionError:
            data, fds = b"", []
        if not data:  # the server has gone; its jobs end when their stdin closes
            return
        if len(fds) != 3 or thread_count() != 1:
            for fd in fds:
                os.close(fd)
            _send(control, {"error": f"the warm process cannot fork ({thread_count()} threads, {len(fds)} streams)"})
            continue
        pid = _fork_job(control, wake_r, wake_w, json.loads(data)["argv"], fds)
        running.add(pid)
        _send(control, {"pid": pid})


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    for name in PRELOAD:
        __import__(name)
    try:
        _send(control, {"ready": thread_count()})
        serve(control)
    except ConnectionError:  # the server has gone while this process was importing, or mid-answer
        pass


# --- the server's side ---------------------------------------------------------------------------------

class ForkedProcess:
    """A job forked by the warm process, with the part of subprocess.Popen's surface the runner uses:
    pid, stdin, stdout, poll(), wait(), terminate(), kill(), returncode."""

    def __init__(self, stdin, stdout):
        self.stdin, self.stdout = stdin, stdout
        self.pid: int | None = None
        self.returncode: int | None = None
        self._ended = threading.Event()
        self._signal_on_start: int | None = None

    def _start(self, pid: int) -> None:
        self.pid = pid
        if self._signal_on_start is not None:
            self.send_signal(self._signal_on_start)

    def _end(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("forked job", timeout)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self._ended.is_set():
            return
        if self.pid is None:  # not forked yet: on its way
            self._signal_on_start = signum
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The server's handle on one warm process: started at once (it imports in the background), asked to
    fork one process per job. start_job never waits for the warm process, so it can be called under a lock;
    it raises OSError once the warm process has gone (make a new ForkServer then)."""

    def __init__(self, env: dict | None = None):
        self._lock = threading.Lock()
        self._waiting: list[ForkedProcess] = []  # asked for, not yet forked: answers come in this order
        self._running: dict[int, ForkedProcess] = {}
        self.ready = threading.Event()  # it has imported everything
        self.threads_when_ready: int | None = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ if env is None else env)
        env["OPENBLAS_NUM_THREADS"] = "1"  # OpenBLAS starts its threads when numpy is imported: none before a fork
        self.process = subprocess.Popen([sys.executable, "-m", "vae.server.forkserver", str(theirs.fileno())],
                                        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self._control = ours
        threading.Thread(target=self._read_answers, name="forkserver-answers", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def start_job(self, argv: list[str], stderr) -> ForkedProcess:
        """`python -m vae <argv>`, forked: stdin and stdout are pipes (text, line-buffered) as with
        subprocess.Popen(..., stdin=PIPE, stdout=PIPE, text=True, bufsize=1); stderr a file object."""
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        job = ForkedProcess(open(stdin_w, "w", buffering=1, encoding="utf-8"), open(stdout_r, encoding="utf-8"))
        try:
            with self._lock:
                if not self.alive:
                    raise BrokenPipeError("the warm process has ended")
                self._waiting.append(job)
                socket.send_fds(self._control, [json.dumps({"argv": argv}).encode()],
                                [stdin_r, stdout_w, stderr.fileno()])
        except OSError:
            with self._lock:
                if job in self._waiting:
                    self._waiting.remove(job)
            job.stdin.close()
            job.stdout.close()
            raise
        finally:
            os.close(stdin_r)
            os.close(stdout_w)
        return job

    def _read_answers(self) -> None:
        while True:
            try:
                data = self._control.recv(MESSAGE_BYTES)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                if "ready" in message:
                    self.threads_when_ready = message["ready"]
                    self.ready.set()
                elif "pid" in message or "error" in message:
                    job = self._waiting.pop(0)
                    if "pid" in message:
                        self._running[message["pid"]] = job
                        job._start(message["pid"])
                    else:
                        job._end(1)
                elif "exited" in message:
                    job = self._running.pop(message["exited"], None)
                    if job is not None:
                        job._end(message["returncode"])
        with self._lock:  # the warm process has gone: so do its jobs, and those it had not forked yet
            for job in self._running.values():
                job.kill()
                job._end(-signal.SIGKILL)
            for job in self._waiting:
                job._end(-signal.SIGKILL)
            self._running.clear()
            self._waiting.clear()
        self._control.close()

    def close(self) -> None:
        """Stop the warm process, and any job still running from it."""
        try:
            self._control.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


if __name__ == "__main__":
    main()
