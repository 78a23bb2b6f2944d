"""app.background: heavy jobs in a forked child at lower priority, their results, errors and progress back here,
the child killed when the caller stops listening, and the shared objects' locks safe across the fork."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from app import background
from lessons.course import LRU
from lessons.inputs import LessonError
from lessons.tokenization import compute as T
from lessons.training import compute as C
from llama.tokenizer import BPETokenizer


def where(progress=None):
    if progress:
        progress(0.5, "half way")
    return os.getpid(), os.nice(0)


def counting(n, progress=None):
    for i in range(n):
        progress(i / n, f"item {i}")
        yield i * i


def refuses():
    raise LessonError("the vocabulary size must be a number")


def buggy():
    return 1 / 0


def dies():
    os._exit(3)


def sleeps_forever():
    yield os.getpid()
    time.sleep(3600)
    yield "never"


def test_a_job_runs_in_another_process_at_lower_priority_and_reports_progress():
    heard = []
    pid, nice = background.call(where, progress=lambda f, d: heard.append((f, d)))
    assert pid != os.getpid()
    assert nice == min(19, os.nice(0) + background.NICE)
    assert heard == [(0.5, "half way")]


def test_a_generator_streams_its_items_in_order_with_progress_between():
    heard = []
    assert list(background.stream(counting, 4, progress=lambda f, d: heard.append(d))) == [0, 1, 4, 9]
    assert heard == ["item 0", "item 1", "item 2", "item 3"]


def test_a_learner_message_stays_a_message_and_a_bug_stays_a_bug():
    with pytest.raises(LessonError, match="vocabulary size must be a number"):
        background.call(refuses)
    with pytest.raises(background.JobFailed, match="ZeroDivisionError"):
        background.call(buggy)
    with pytest.raises(background.JobFailed, match="exited with code 3"):
        background.call(dies)


def test_closing_the_stream_kills_the_child():
    job = background.stream(sleeps_forever)
    pid = next(job)
    os.kill(pid, 0)  # alive
    t0 = time.perf_counter()
    job.close()
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def pid_then_counts():
    yield os.getpid()
    for i in range(100_000):
        yield i
        time.sleep(0.05)


def test_a_job_ends_when_its_server_is_killed(tmp_path):
    # A server (here a small Python process) runs a job, then dies by SIGKILL: no exit handler runs. The child must
    # not live on, blocked on a pipe nobody reads.
    import signal
    import subprocess
    import sys

    script = tmp_path / "server.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path[:0] = [{str(Path(__file__).resolve().parents[1])!r}, {str(Path(__file__).resolve().parent)!r}]\n"
        "from app import background\n"
        "from test_background import pid_then_counts\n"
        "job = background.stream(pid_then_counts)\n"
        "print(next(job), flush=True)\n"
        "time.sleep(3600)\n")
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(server.stdout.readline())
    os.kill(child, 0)  # the job runs
    server.send_signal(signal.SIGKILL)
    server.wait(10)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return  # gone (reaped by init)
        if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return  # exited, a zombie until init reaps it
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the job's process outlived its killed server")


def _in_thread(fn, timeout=30.0):
    """fn() in a thread; its result, or a failure if it has not returned within timeout (a deadlock)."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the job hung: a lock held at the fork was never released in the child"
    return out[0]


def test_locks_held_by_other_threads_at_the_fork_do_not_hang_the_child():
    cache, tok = LRU(4), BPETokenizer.train("to be or not to be " * 20, 300)
    # Another thread is inside the cache and the tokenizer's word cache when the fork happens.
    with cache.lock, tok._cache_lock:
        got = _in_thread(lambda: background.call(
            lambda: (cache.get_or_compute("k", lambda: 42), tok.encode("brave new words"))))
    assert got == (42, tok.encode("brave new words"))


def test_the_lab_trains_in_a_child_and_its_model_comes_back_whole(tmp_path):
    from lessons.course import load_course_model
    torch.manual_seed(0)
    cm = load_course_model()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: But soft, what light through yonder window breaks?\n" * 200, encoding="utf-8")
    s, _ = C.lab_settings(1, 32, 2, 1, "rmsnorm", "rope", "swiglu", "pre", 3e-3, 4, 2)
    C.corpus_ids(cm, corpus)  # as the page does: the child inherits the tokenized corpus
    updates = list(background.stream(C.train_lab, cm, s, corpus=corpus))
    lab = updates[-1].lab
    assert updates[-1].done and lab.steps > 0
    assert lab.model.embed_tokens.weight.abs().sum() > 0 and not lab.model.training
    # The weights came back exactly: the same text as a generation by the child's own model would give.
    again = C.LabModel(lab.model, lab.tokenizer, lab.settings)
    assert C.generate_with(lab, "ROMEO:", 8, 0) == C.generate_with(again, "ROMEO:", 8, 0)
    assert C.generate_with(lab, "ROMEO:", 8, 0)[0].startswith("ROMEO:")


def test_bpe_training_in_a_child_gives_what_it_gives_here():
    # The page's own case: the server has trained the four tokenizers (the page's first view) before a learner's
    # training is forked (sentencepiece's Unigram with its default 16 threads then crashed the child).
    from lessons.course import load_course_model
    tok = load_course_model().tokenizer
    text = T.default_text()
    here = T.train_lesson(text, 513, tok)
    there = background.call(T.train_lesson, text, 513, tok)
    assert there.trained.tok.merges == here.trained.tok.merges
    drop = lambda rows: [{k: v for k, v in r.items() if k != "encode_ms"} for r in rows]  # noqa: E731
    assert drop(there.rows) == drop(here.rows)


PAGE = "0123456789abcdef" * 2  # a page's token (app/static/stop.js makes a random one)


def test_a_stop_kills_the_job_at_once_and_only_its_own_run():
    board = background.StopBoard()
    stopped = board.watch(PAGE + ":1")  # the learner clicked the job's button: the page's run 1
    job = background.stream(sleeps_forever, stop=stopped)
    pid = next(job)  # the child is asleep inside its job: nothing more comes through the pipe
    assert not stopped()
    assert board.press(PAGE + ":1")
    t0 = time.perf_counter()
    with pytest.raises(StopIteration) as end:
        next(job)
    assert time.perf_counter() - t0 < 1 and end.value.value is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    # The next click is a new run: the old Stop does not stop it; a Stop pressed while it waits does.
    assert not board.watch(PAGE + ":2")()
    board.press(PAGE + ":2")
    assert board.watch(PAGE + ":2")()
    assert not board.watch("f" * 32 + ":2")()  # another page's run 2 goes on


def test_a_stop_that_reaches_the_server_before_its_runs_click_still_stops_that_run():
    """The job's event and the Stop are two requests the server may take in either order: the page's run numbers,
    not the order of arrival, decide (the miss of issue 24)."""
    board = background.StopBoard()
    board.press(PAGE + ":4")  # Stop pressed during run 4; its request overtook run 4's event
    assert board.watch(PAGE + ":4")()
    assert not board.watch(PAGE + ":5")()  # run 5 was clicked after that Stop
    board.press(PAGE + ":2")  # a late, older Stop does not undo a newer one, nor stop run 5
    assert board.watch(PAGE + ":4")() and not board.watch(PAGE + ":5")()


@pytest.mark.parametrize("run_id", ["", None, 3, "x:1", PAGE, PAGE + ":", PAGE + ":-1", PAGE + ":1e3",
                                    PAGE.upper() + ":1", PAGE + ":1" + "0" * 60, [PAGE + ":1"]])
def test_what_is_not_a_run_id_stops_nothing(run_id):
    board = background.StopBoard()
    assert not board.press(run_id)
    assert not board.watch(run_id)()  # an API call (no run id) runs to its end


def test_the_board_remembers_a_bounded_number_of_pages():
    board = background.StopBoard(capacity=3)
    pages = [f"{i:032x}" for i in range(5)]
    for p in pages:
        board.press(p + ":1")
    assert not board.watch(pages[0] + ":1")() and board.watch(pages[4] + ":1")()
    assert len(board._stopped) == 3
    assert sorted(f.name for f in board._dir.iterdir()) == pages[2:]  # and as many files, for forked processes


def test_a_board_that_cannot_write_its_directory_stops_in_memory_and_says_so_once(tmp_path, monkeypatch, capsys):
    """A read-only filesystem, a temp dir that is not a directory: no crash; Stop works in the server's own
    process as it did before the file existed, and the log says once why a forked worker's run cannot be stopped."""
    monkeypatch.setattr(background.StopBoard, "_said_memory_only", False)
    (tmp_path / "not-a-dir").write_text("")
    boards = [background.StopBoard(root=tmp_path / "not-a-dir"), background.StopBoard(root=tmp_path / "not-a-dir")]
    for board in boards:
        watched = board.watch(PAGE + ":2")
        assert board.press(PAGE + ":2") and board.press(PAGE + ":1")
        assert watched() and board.watch(PAGE + ":1")() and not board.watch(PAGE + ":3")()
        assert board._dir is None
    log = capsys.readouterr().out
    assert log.count("Stop works within this process only") == 1 and "not-a-dir" in log


def test_a_boards_directory_goes_with_it_and_only_in_its_own_process(tmp_path):
    import gc
    board = background.StopBoard(root=tmp_path)
    board.press(PAGE + ":1")
    folder = board._dir
    assert (folder / PAGE).read_text() == "1" and not [f for f in folder.iterdir() if f.name.startswith(".")]
    background._remove_board_dir(folder, os.getpid() + 1)  # a forked worker's exit leaves it
    assert folder.exists()
    import shutil
    shutil.rmtree(folder)  # a temp cleaner took it: the next Stop makes it again
    board.press(PAGE + ":2")
    assert (folder / PAGE).read_text() == "2" and board._dir == folder
    del board
    gc.collect()
    assert not folder.exists()
    # A server killed without its exit handlers (SIGTERM) leaves its directory: the next board's first Stop sweeps it.
    dead = subprocess_pid_that_exited()
    left = tmp_path / f"inside-llama-stops-{dead}-0badcafe"
    left.mkdir()
    (left / PAGE).write_text("3")
    alive = tmp_path / f"inside-llama-stops-{os.getppid()}-0badcafe"
    alive.mkdir()
    background.StopBoard(root=tmp_path).press(PAGE + ":1")
    assert not left.exists() and alive.exists()


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_stop_route_answers_204_or_400_never_500():
    from starlette.applications import Starlette
    from starlette.testclient import TestClient
    background.STOPS._stopped.clear()
    web = TestClient(Starlette(routes=background.routes()))
    assert web.post("/api/stop", json={"run": PAGE + ":7"}).status_code == 204
    assert background.STOPS.watch(PAGE + ":7")()
    for body in ({"run": "nope"}, {}, [], "text"):
        r = web.post("/api/stop", json=body)
        assert r.status_code == 400 and "run id" in r.json()["detail"]
    r = web.post("/api/stop", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    background.STOPS._stopped.clear()


def test_a_stopped_lab_run_keeps_its_curve_and_model_at_the_step_reached(tmp_path):
    from lessons.course import load_course_model
    cm = load_course_model()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: But soft, what light through yonder window breaks?\n" * 200, encoding="utf-8")
    s, _ = C.lab_settings(1, 32, 2, 1, "rmsnorm", "rope", "swiglu", "pre", 3e-3, 4, 30)
    C.corpus_ids(cm, corpus)
    board = background.StopBoard()
    got, t0 = [], time.perf_counter()
    for u in background.stream(C.train_lab, cm, s, corpus=corpus, stop=board.watch(PAGE + ":1")):
        got.append(u)
        if len(got) == 2:
            board.press(PAGE + ":1")
            t0 = time.perf_counter()
    assert time.perf_counter() - t0 < 1 and len(got) == 2 and not got[-1].done  # a 30 s budget, stopped at once
    u = C.stopped(got[-1])
    assert u.status.startswith(f"**Stopped at step {got[-1].lab.steps:,}**") and u.done and u.figure is got[-1].figure
    assert not u.lab.model.training and C.generate_with(u.lab, "ROMEO:", 4, 0)[0].startswith("ROMEO:")
    assert C.stopped(None) is None



def _watch_in_a_fork(watch, said, give_up_s) -> None:
    """A forked process's life (a ZeroGPU worker's, a job's): ask `watch` as background.stream does; tell the parent
    how long it watched until it saw its Stop and whether it says so again at once (on_train asks again after the
    stream ends), or None after give_up_s without one."""
    said.send("watching")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < give_up_s:
        if watch():
            said.send((time.perf_counter() - t0, watch()))
            return
        time.sleep(background.POLL_S)
    said.send(None)


def _fork_watching(board, run_id, give_up_s=5.0):
    """(process, pipe) of a child forked after the board exists, watching `run_id` on its copy of the board."""
    fork = background.multiprocessing.get_context("fork")
    hear, said = fork.Pipe(duplex=False)
    child = fork.Process(target=_watch_in_a_fork, args=(board.watch(run_id), said, give_up_s), daemon=True)
    child.start()
    said.close()
    assert hear.poll(10) and hear.recv() == "watching"
    return child, hear


def test_a_stop_reaches_a_run_in_a_process_forked_before_it_was_pressed():
    """On a ZeroGPU Space a picked model's events run in a worker forked from the server (app.gpu): the training
    lab's run watches the worker's copy of the board, while the learner's Stop (POST /api/stop) lands on the
    server's. The Stop must reach the run all the same, at once, and the numbers still decide."""
    board = background.StopBoard()
    board.press("f" * 32 + ":1")  # another page's Stop: the board exists and has been used before the fork
    children = {n: _fork_watching(board, f"{PAGE}:{n}", give_up_s=1.5 if n == 4 else 5.0) for n in (2, 3, 4)}
    try:
        t0 = time.perf_counter()
        assert board.press(PAGE + ":3")  # on the server's board, as the route presses it
        seen = {}
        for n, (_, hear) in children.items():
            assert hear.poll(10), f"run {n}'s process gave no answer"
            seen[n] = hear.recv()
        assert seen[3] is not None, "the forked run never saw the Stop pressed in its parent"
        assert seen[2] is not None  # an earlier run of the page stops too
        assert seen[4] is None  # a later run goes on
        assert seen[3][0] < 1 and time.perf_counter() - t0 < 2.5
        assert seen[3][1] and seen[2][1], "a watch that said stopped must keep saying so"
    finally:
        for child, _ in children.values():
            child.join(10)


def _forked_like_zerogpu(duration):
    """A stand-in for `spaces.GPU(duration=...)` as a ZeroGPU Space runs it (spaces' zero/wrappers.py forks a worker
    from the server: the 'fork' context), unlike tests/zerogpu/spaces, which runs the function in-process: the
    decorated generator runs in a worker forked at the call, its items pickled back through a pipe."""
    def wrap(fn):
        def call(*args, **kwargs):
            fork = background.multiprocessing.get_context("fork")
            hear, say = fork.Pipe(duplex=False)

            def work():
                hear.close()
                try:
                    for item in fn(*args, **kwargs):
                        say.send(("item", item))
                    say.send(("end", None))
                except BaseException as e:  # noqa: BLE001 (back to the test, which fails with it)
                    say.send(("error", repr(e)))

            worker = fork.Process(target=work)  # not a daemon: the lab forks its training process in it
            worker.start()
            say.close()
            try:
                while True:
                    kind, value = hear.recv()
                    if kind == "end":
                        return
                    if kind == "error":
                        raise RuntimeError(f"the GPU worker failed: {value}")
                    yield value
            finally:
                if worker.is_alive():
                    worker.kill()
                worker.join()
        return call
    return wrap


def test_the_training_labs_stop_reaches_its_run_in_a_zerogpu_worker(monkeypatch):
    """The page's own Train handler, wrapped by widgets.handler as for a picked model on ZeroGPU (app.context.lent_gpu):
    the run goes on in a forked GPU worker with its own copy of the board; the Stop lands on the server's board (as
    POST /api/stop does). The run stops within a second and the page gets "Stopped at step N" from the worker."""
    import app.context
    import app.gpu
    from app import widgets
    from app.pages import training as page
    from lessons.course import load_course_model

    cm = load_course_model()
    monkeypatch.setattr(background, "STOPS", background.StopBoard())  # the server's board, made before the fork
    monkeypatch.setattr(app.gpu, "gpu", _forked_like_zerogpu)
    monkeypatch.setattr(app.context, "lent_gpu", lambda key: True)  # a picked model on ZeroGPU
    monkeypatch.setattr(app.context, "resolve", lambda key: cm)
    train = widgets.handler(page.on_train, 5, msg_at=0)
    run_id = PAGE + ":1"
    outputs, pressed = [], None
    for out in train("picked-model", run_id, 1, 32, 2, 1, "rmsnorm", "rope", "swiglu", "pre", 3e-3, 4, 30):
        outputs.append(out)
        if len(outputs) == 3 and pressed is None:  # "Preparing…", then two updates of the run: Stop
            assert background.STOPS.press(run_id)
            pressed = time.perf_counter()
    assert pressed is not None, "the run ended before it could be stopped"
    took = time.perf_counter() - pressed
    print(f"Stop to the page's last output through a forked GPU worker: {took:.2f} s")
    assert took < 2  # not the 30 s budget
    assert outputs[-1][2].startswith("**Stopped at step"), outputs[-1][2]
