"""Heavy jobs (a training run of the lab, BPE training) in a child process at a lower CPU priority.

A learner's multi-second job must not slow every other learner's slider. In this process it would: two cores
are shared by all, and a pure-Python loop (our BPE's merges, the training loop's per-step work) holds the GIL,
so each of the other handlers' many small torch calls waits for it again and again. `stream` forks the server
for the job: the child starts at once with everything loaded (the model, the tokenizer, the corpus' token ids,
all shared copy-on-write), runs at `NICE` niceness, so the kernel gives the cores to the interactive handlers
first, and has a GIL of its own. The child exits when the job ends, so its memory goes with it; closing the
stream kills it, and so does the learner's Stop (`StopBoard`, asked every POLL_S while the stream waits for the child).
Gradio's own cancel is not used for that: it closes a handler's generator only between two of its items, holding a
lock while the generator is inside next(), and in a browser it mostly missed the running event.

What the child does must be safe after a fork from a threaded server: it uses no CUDA (the lab trains on the
CPU), no Gradio, and of the locks other threads may hold at the fork only those that re-arm themselves in the
child (lessons.course.LRU, llama.tokenizer.BPETokenizer). Its results come back pickled through a pipe.

    for update in background.stream(compute.train_lab, cm, settings, progress=report):
        ...
    training = background.call(compute.train_lesson, text, vocab, tok, progress=report)
    for update in background.stream(compute.train_lab, cm, settings, stop=STOPS.watch(run_id)):
        ...
"""

from __future__ import annotations

import collections
import inspect
import multiprocessing
import os
import pickle
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
import weakref
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lessons.inputs import LessonError

NICE = 10  # added niceness: at 10 a busy child gets about a tenth of a core that the server also wants
_FORK = multiprocessing.get_context("fork")
POLL_S = 0.05  # how often a stream with a `stop` asks it while it waits for the child


class JobFailed(RuntimeError):
    """The child raised something other than a LessonError (a bug: its traceback is the message), or died."""


class StopBoard:
    """The learners' Stop buttons for their own long jobs (the training lab's run), outside Gradio's events.

    Why not a Gradio event: the browser dispatches an event only after it has gathered its inputs, and while a job
    streams updates (a figure every fraction of a second) that can wait until the stream ends: a Stop sent that way
    arrived up to 12 s late, when the run had already used its whole budget (issue 24). So the Stop button is
    plain JavaScript (app/static/stop.js): a click posts the run's id to POST /api/stop (`routes`) at once.

    A run id is "<page>:<n>": a random 128-bit page token made by the page, and n counted up by each click of the
    job's button; the button's event carries the id to the job (a hidden input filled in the browser), the job
    takes `watch(run_id)`, and `stream(..., stop=watch)` kills its process once a Stop named n or a later run of
    the same page. The two requests may reach the server in either order: the numbers decide, not the arrival.

    The job may watch from another process than the one the Stop reaches: on a ZeroGPU Space a picked model's events
    run in a worker that `spaces` forks from the server (app.gpu), with its own copy of this board. So `press` also
    writes the page's highest stopped n to a small file, `<temp dir>/inside-llama-stops-<pid>-<random>/<page>`
    (written whole and renamed into place), in a directory named when the board is made, so every process forked
    from here looks in the same one; `watch` asks memory first, then that file, at most every READ_EVERY_S. The
    Stops are pressed by the server (its route); forked processes only watch. The temp dir is the system's
    (TMPDIR); where it cannot be written (a read-only filesystem) the board says so once in the log and works from
    memory only, as before: a run in a ZeroGPU worker then cannot be stopped, every other one can.

    Memory is bounded: the last CAPACITY pages are remembered (one integer each, and as many small files, the
    oldest removed with its entry); the directory goes when the server exits, or, after a kill, at the next server's
    first Stop. Thread-safe.

        run_id = gr.Textbox(visible=False)
        go = gr.Button("Train", elem_classes=[background.ARM_CLASS])
        go.click(on_train, [key, run_id, ...], [...], js=background.RUN_ID_JS % 1)   # fills input 1 in the browser
        stop = gr.Button("Stop", elem_classes=[background.STOP_CLASS])               # no Gradio event
        ...
        for update in background.stream(job, ..., stop=background.STOPS.watch(run_id)):
    """

    CAPACITY = 4096
    RUN_ID = re.compile(r"([0-9a-f]{32}):([0-9]{1,9})")
    READ_EVERY_S = 0.1  # a watch reads its page's file at most this often (stream asks it every POLL_S)
    _said_memory_only = False  # the log has been told that this process's boards work from memory only

    def __init__(self, capacity: int = CAPACITY, root: str | os.PathLike | None = None) -> None:
        self._capacity = capacity
        self._stopped: collections.OrderedDict[str, int] = collections.OrderedDict()  # page -> highest run stopped
        self._lock = threading.Lock()
        # Named now, made at the first Stop: a process forked at any time after this looks in the same directory.
        # None once it could not be written (memory only).
        base = Path(root) if root is not None else Path(tempfile.gettempdir())
        self._dir: Path | None = base / f"inside-llama-stops-{os.getpid()}-{secrets.token_hex(4)}"
        self._made = False
        _BOARDS.add(self)

    def _after_fork(self) -> None:
        """In a forked child the thread that held the lock is gone: a fresh lock."""
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, run_id) -> tuple[str, int] | None:
        """(page, n) of a run id, or None for anything else (an API call gives none: its job cannot be stopped)."""
        m = cls.RUN_ID.fullmatch(run_id) if isinstance(run_id, str) and len(run_id) <= 48 else None
        return (m[1], int(m[2])) if m else None

    def press(self, run_id) -> bool:
        """Stop the run `run_id` and every earlier run of its page; False when it is not a run id."""
        parsed = self.parse(run_id)
        if parsed is None:
            return False
        page, n = parsed
        with self._lock:
            n = max(n, self._stopped.pop(page, 0), self._read(page))  # the file: a Stop pressed in another process
            self._stopped[page] = n  # moved to the newest end
            forgotten = []
            while len(self._stopped) > self._capacity:
                forgotten.append(self._stopped.popitem(last=False)[0])
            self._write(page, n, forgotten)  # under the lock: a lower n never lands after a higher one
        return True

    def watch(self, run_id):
        """For a job starting now: a callable, True once a Stop named its run or a later one of its page (pressed
        in this process or, seen within READ_EVERY_S, in the one this process was forked from)."""
        parsed = self.parse(run_id)
        if parsed is None:
            return lambda: False
        page, n = parsed
        state = {"read_at": -float("inf"), "stopped": False}

        def stopped() -> bool:
            if state["stopped"] or self._stopped.get(page, 0) >= n:
                return True
            now = time.monotonic()
            if now - state["read_at"] >= self.READ_EVERY_S:
                state["read_at"] = now
                state["stopped"] = self._read(page) >= n  # once stopped, stays stopped: no more reads
            return state["stopped"]
        return stopped

    def _read(self, page: str) -> int:
        """The highest run of `page` stopped on file; 0 when none (no file, memory only, unreadable)."""
        folder = self._dir
        if folder is None:
            return 0
        try:
            with open(folder / page, "rb") as f:
                return int(f.read(16) or 0)
        except (OSError, ValueError):
            return 0

    def _write(self, page: str, n: int, forgotten: list[str]) -> None:
        """Record `page`'s n on file for forked processes (atomically: written aside, renamed into place) and drop
        the files of the pages memory forgot. A directory that cannot be written: memory only, said once."""
        folder = self._dir
        if folder is None:
            return
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # each time: a temp cleaner may have removed it
            if not self._made:
                self._made = True
                weakref.finalize(self, _remove_board_dir, folder, os.getpid())
                _sweep(folder.parent)
            aside = folder / f".{page}.{os.getpid()}"
            aside.write_bytes(str(n).encode())
            os.replace(aside, folder / page)
            for p in forgotten:
                (folder / p).unlink(missing_ok=True)
        except OSError as e:
            self._dir = None
            if not StopBoard._said_memory_only:  # once per process, not once per Stop
                StopBoard._said_memory_only = True
                print(f"[inside-llama] Stop works within this process only: cannot write {folder} "
                      f"({e.strerror or e}); a run in a forked worker (a ZeroGPU Space's) cannot be stopped",
                      flush=True)


_BOARDS: weakref.WeakSet = weakref.WeakSet()  # every board, for their after-fork reset
os.register_at_fork(after_in_child=lambda: [b._after_fork() for b in list(_BOARDS)])


def _sweep(base: Path) -> None:
    """Remove the directories of boards whose server is gone without its exit handlers (a SIGTERM, a kill)."""
    for folder in base.glob("inside-llama-stops-*-*"):
        try:
            os.kill(int(folder.name.split("-")[3]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):  # not one of ours; alive as another user (PermissionError)
            pass


def _remove_board_dir(folder: Path, owner: int) -> None:
    """A board's directory goes with the board or at exit, in the process that made it (not in a forked worker
    that exits while the server serves on)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


STOPS = StopBoard()  # the server's one board
STOP_CLASS = "stop-button"  # a button with this class posts the page's last run id to /api/stop (app/static/stop.js)
ARM_CLASS = "stop-arm"  # a click on a job's button with this class counts one more run of the page
# The job button's event: input number %d gets the run id that the click just made (app/static/stop.js).
RUN_ID_JS = "(...a) => { a[%d] = window.insideLlamaStop ? window.insideLlamaStop.current() : ''; return a; }"


async def _stop_route(request: Request) -> Response:
    """POST /api/stop {"run": "<page>:<n>"}: 204 once recorded; 400 with a message for anything else."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not (isinstance(body, dict) and STOPS.press(body.get("run"))):
        return JSONResponse({"detail": "Not a run id: expected {\"run\": \"<32 hex digits>:<number>\"}."},
                            status_code=400)
    return Response(status_code=204)


def routes() -> list:
    """The Stop's route, put in front of Gradio's (launch(app_kwargs={"routes": ...}))."""
    return [Route("/api/stop", _stop_route, methods=["POST"])]


def stream(fn, *args, progress=None, stop=None, **kwargs):
    """Run fn(*args, **kwargs) in a forked child at lower priority; yield what it yields (a generator) or
    return what it returns (the StopIteration value; see `call`).

    stop, when given, is asked every POLL_S while the child works (Stop.watch): once it returns True the child is
    killed and the stream ends at once, returning None (the caller keeps the last item it got).

    progress(fraction, desc), when given, hears the child's progress reports (fn gets a `progress=` of its own
    that sends them). A LessonError raised in the child is raised here with its message; anything else raises
    JobFailed with the child's traceback. Closing this generator early kills the child.
    """
    receive, send = _FORK.Pipe(duplex=False)
    child = _FORK.Process(target=_child, args=(receive, send, fn, args, kwargs, progress is not None), daemon=True)
    child.start()
    send.close()
    try:
        while True:
            if stop is not None:
                while not receive.poll(POLL_S):
                    if stop():
                        return None
                if stop():
                    return None
            try:
                kind, value = receive.recv()
            except EOFError:
                child.join(5)
                raise JobFailed(f"{fn.__name__} ended without a result (the job's process exited with code "
                                f"{child.exitcode})") from None
            if kind == "item":
                yield value
            elif kind == "progress":
                progress(*value)
            elif kind == "result":
                return value
            elif kind == "lesson":
                raise LessonError(value)
            else:
                raise JobFailed(f"{fn.__name__} failed in its process:\n{value}")
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()


def call(fn, *args, progress=None, **kwargs):
    """fn(*args, **kwargs) in a forked child at lower priority (as `stream`); its return value."""
    job = stream(fn, *args, progress=progress, **kwargs)
    while True:
        try:
            next(job)
        except StopIteration as done:
            return done.value


def _child(receive, send, fn, args, kwargs, wants_progress) -> None:
    """The child's whole life: lower priority, run fn, send each item (or the result), exit without running the
    server's exit handlers."""
    # The fork copied the server's read end of this pipe: closed, so that if the server dies (a kill, no exit
    # handlers) the next send fails and the child ends, instead of blocking on a pipe only it could read.
    receive.close()
    code = 0
    try:
        os.nice(NICE)
        if wants_progress:
            kwargs = dict(kwargs, progress=lambda fraction, desc="": send.send(("progress", (fraction, desc))))
        out = fn(*args, **kwargs)
        if inspect.isgenerator(out):
            for item in out:
                send.send(("item", item))
            out = None
        send.send(("result", out))
    except LessonError as e:
        send.send(("lesson", str(e)))
    except BaseException:  # noqa: BLE001 (a bug in the job: its traceback goes to the server, which raises it)
        code = 1
        try:
            send.send(("bug", traceback.format_exc()))
        except (OSError, pickle.PicklingError):
            pass
    finally:
        send.close()
        os._exit(code)  # not sys.exit: the forked server's atexit handlers and stream flushes are not ours
