"""Heavy jobs (a training run of the lab, BPE training) in a child process at a lower CPU priority.

A learner's multi-second job must not slow every other learner's slider. In this process it would: two cores
are shared by all, and a pure-Python loop (our BPE's merges, the training loop's per-step work) holds the GIL,
so each of the other handlers' many small torch calls waits for it again and again. `stream` forks the server
for the job: the child starts at once with everything loaded (the model, the tokenizer, the corpus' token ids,
all shared copy-on-write), runs at `NICE` niceness, so the kernel gives the cores to the interactive handlers
first, and has a GIL of its own. The child exits when the job ends, so its memory goes with it; closing the
stream kills it, and so does the learner's Stop (`Stop`, asked every POLL_S while the stream waits for the child).
Gradio's own cancel is not used for that: it closes a handler's generator only between two of its items, holding a
lock while the generator is inside next(), and in a browser it mostly missed the running event.

What the child does must be safe after a fork from a threaded server: it uses no CUDA (the lab trains on the
CPU), no Gradio, and of the locks other threads may hold at the fork only those that re-arm themselves in the
child (lessons.course.LRU, llama.tokenizer.BPETokenizer). Its results come back pickled through a pipe.

    for update in background.stream(compute.train_lab, cm, settings, progress=report):
        ...
    training = background.call(compute.train_lesson, text, vocab, tok, progress=report)
    for update in background.stream(compute.train_lab, cm, settings, stop=Stop.watch(halt)):   # halt: a Stop
        ...
"""

from __future__ import annotations

import inspect
import itertools
import multiprocessing
import os
import pickle
import traceback

from lessons.inputs import LessonError

NICE = 10  # added niceness: at 10 a busy child gets about a tenth of a core that the server also wants
_FORK = multiprocessing.get_context("fork")
POLL_S = 0.05  # how often a stream with a `stop` asks it while it waits for the child


class JobFailed(RuntimeError):
    """The child raised something other than a LessonError (a bug: its traceback is the message), or died."""


class Stop:
    """A learner's Stop button for their own jobs, kept in their session's gr.State (each session a copy of the
    State's value; made at the first click where the State starts as None).
    Every click of the job's button arms it first (queue=False, so at once, even while the job waits in the queue);
    the job takes `watch()`, a callable that turns True once Stop was pressed after that click;
    `stream(..., stop=watch)` then kills the job's process.

        halt = gr.State(background.Stop())
        go.click(background.Stop.arm, halt, halt, queue=False).then(on_train, [..., halt], ...)
        stop.click(background.Stop.press, halt, None, queue=False)

    Arm and press read one counter (itertools.count: atomic under the GIL), so a Stop pressed while the job still
    waits in the queue stops it as soon as it starts, and the next click of the button runs again."""

    def __init__(self) -> None:
        self._clock = itertools.count(1)
        self._armed = 0  # the clock at the last click of the job's button (0: never, e.g. an API client)
        self._pressed = 0  # the clock at the last Stop

    @staticmethod
    def arm(halt: "Stop | None") -> "Stop":
        """The session's Stop (made at the first click), armed for the job this click starts."""
        halt = halt if isinstance(halt, Stop) else Stop()
        halt._armed = next(halt._clock)
        return halt

    @staticmethod
    def press(halt: "Stop | None") -> None:
        if isinstance(halt, Stop):
            halt._pressed = next(halt._clock)

    @staticmethod
    def watch(halt: "Stop | None"):
        """For a job starting now: a callable, True once Stop was pressed after this job's click (an API call, which
        clicked nothing, cannot be stopped this way)."""
        if not isinstance(halt, Stop):
            return lambda: False
        run = halt._armed or next(halt._clock)
        return lambda: halt._pressed > run


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
