"""Class mode (app/classroom): storage, API, limits and privacy on SQLite always and on a real PostgreSQL that
this test run starts itself (Debian's postgresql; skipped with the reason printed where it cannot start); a server
killed mid-class and restarted; a student in a real browser recorded from /attention?class=CODE."""

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from glob import glob
from pathlib import Path

import pytest

from app.classroom import api, questions
from app.classroom import store as S
import lessons
from lessons.attention.compute import Q_SCALE
from lessons.grading import grade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
import class_server  # noqa: E402

LAYERS = ["layer 0", "layer 1", "layer 2"]


def verdict(picked, answer, options=LAYERS) -> str:
    return grade(picked, answer, options).verdict()


# ------------------------------------------------------------------ databases
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of its own in a temporary folder (initdb, pg_ctl; as `nobody` when run as root),
    stopped at the end. Skips, with the reason, where Debian's postgresql or psycopg is missing."""
    bins = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed: `make test` installs Debian's postgresql when run as root "
                    "(apt-get install postgresql); the class-mode suite ran on SQLite only")
    pytest.importorskip("psycopg", reason="psycopg is not installed (requirements.txt)")
    bindir = Path(bins[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="inside-llama-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port = _free_port()
    data = folder / "data"
    run = lambda *cmd: subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    r = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    if r.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed, PostgreSQL tests cannot run here: {r.stderr[-500:]}")
    r = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start")
    if r.returncode != 0:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {r.stderr[-300:]} {log[-300:]}")
    yield f"postgresql://postgres@127.0.0.1:{port}"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(folder, ignore_errors=True)


_n_db = [0]


def new_database(kind: str, request, tmp_path) -> str:
    """A fresh, empty database of that kind: its URL as $INSIDE_LLAMA_DB would give it."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'classes.sqlite3'}"
    server = request.getfixturevalue("postgres_server")
    import psycopg

    _n_db[0] += 1
    name = f"t{os.getpid()}_{_n_db[0]}"
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path, monkeypatch):
    """A Store on a fresh database of each kind, installed as the API's, with fresh rate limits."""
    url = new_database(request.param, request, tmp_path)
    monkeypatch.setenv(S.DB_ENV, url)
    store = S.Store(S.database_url()[0])
    api.set_store(store)
    monkeypatch.setattr(api, "FAILURES", api.Buckets(rate=30 / 600, burst=30))
    monkeypatch.setattr(api, "CREATES", api.Buckets(rate=10 / 3600, burst=10))
    monkeypatch.setattr(api, "WRITES", api.Buckets(rate=1.0, burst=40))
    monkeypatch.setattr(api, "_limiter", None)
    class_server.register()
    yield store
    api.set_store(None)
    store.close()


@pytest.fixture
def client(db):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    with TestClient(FastAPI(routes=api.routes())) as c:
        yield c


def start(client, name="Physics 3A"):
    r = client.post("/api/class", json={"name": name})
    assert r.status_code == 200, r.text
    d = r.json()
    return d["code"], {"X-Teacher-Key": d["teacher_key"]}


def join(client, code, nickname=""):
    r = client.post(f"/api/class/{code}/join", json={"nickname": nickname})
    assert r.status_code == 200, r.text
    return r.json()["student"]


def send(client, code, sid, picked, answer="layer 2", qid="test.layer", page="/attention"):
    return client.post(f"/api/class/{code}/answer", json={"student": sid, "qid": qid, "page": page,
                                                         "choice": picked, "verdict": verdict(picked, answer)})


# ------------------------------------------------------------------ the API, on both databases
def test_a_class_from_start_to_delete(client):
    r = client.post("/api/class", json={"name": "Physics 3A"})
    d = r.json()
    code, key = d["code"], {"X-Teacher-Key": d["teacher_key"]}
    assert S.normalize_code(code) == code and len(d["teacher_key"]) >= 40
    assert d["join_url"].endswith(f"/?class={code}") and d["dashboard_url"].endswith(f"#key={d['teacher_key']}")
    picks = {"Ada": "layer 2", "Bo": "layer 2", "Cy": "layer 0", "": None}
    sids = {nick: join(client, code.lower().replace("-", " "), nick) for nick in picks}  # typed loosely: still works
    for nick, sid in sids.items():
        assert client.post(f"/api/class/{code}/visit", json={"student": sid, "page": "/attention"}).json() == {
            "recorded": True}
    assert client.post(f"/api/class/{code}/visit", json={"student": sids["Ada"], "page": "/rope/"}).status_code == 200
    replies = {nick: send(client, code, sid, picks[nick]).json() for nick, sid in sids.items()}
    # a student sees the class's split only once 3 students predicted (a single answer is never exposed)
    assert replies["Ada"]["class"] is None and replies["Ada"]["answered"] == 1
    assert replies["Cy"]["class"] == {"counts": {"layer 2": 2, "layer 0": 1}, "n": 3}
    send(client, code, sids["Cy"], "layer 2")  # a second try: the first prediction is the one that counts
    s = client.get(f"/api/class/{code}/summary", headers=key).json()
    assert s["name"] == "Physics 3A" and s["students_joined"] == 4 and s["students_active"] == 4
    assert s["answers_stored"] == 5
    assert {p["page"]: p["visits"] for p in s["pages"]}["/attention"] == 4
    assert {p["page"]: p["visits"] for p in s["pages"]}["/rope"] == 1
    (q,) = s["questions"]
    assert q["qid"] == "test.layer" and q["choices"] == LAYERS and q["page_title"] == lessons.get("attention").title
    assert q["counts"] == {"layer 2": 2, "layer 0": 1} and q["answered"] == 3 and q["right"] == 2
    assert q["no_pick"] == 1 and q["measured"] == "layer 2"
    # the CSV has every answer, students by number, not by id
    r = client.get(f"/api/class/{code}/answers.csv", headers=key)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 5 and not any(sid in r.text for sid in sids.values())
    assert [(x["nickname"], x["choice"], x["correct"]) for x in rows] == [
        ("Ada", "layer 2", "yes"), ("Bo", "layer 2", "yes"), ("Cy", "layer 0", "no"), ("", "", ""),
        ("Cy", "layer 2", "yes")]
    assert rows[0]["student"] == "student 1" and rows[4]["student"] == rows[2]["student"] == "student 3"
    assert all(x["measured_answer"] == "layer 2" and x["time_utc"].endswith("Z") for x in rows)
    # pin a view: students read it with the class's public info
    assert client.post(f"/api/class/{code}/pin", json={"view": "http://x.org/attention?layer=2&head=1"},
                       headers=key).json() == {"pinned": "/attention?layer=2&head=1"}
    assert client.post(f"/api/class/{code}/pin", json={"view": "/evil"}, headers=key).status_code == 422
    assert client.get(f"/api/class/{code}").json() == {"code": code, "name": "Physics 3A", "ended": False,
                                                      "pinned": "/attention?layer=2&head=1"}
    # end: no more recording, the data stays
    assert client.post(f"/api/class/{code}/end", headers=key).json() == {"ended": True}
    r = send(client, code, sids["Bo"], "layer 1", qid="test.layer")
    assert r.status_code == 410 and "ended" in r.json()["detail"]
    assert client.post(f"/api/class/{code}/join", json={}).status_code == 410
    assert client.get(f"/api/class/{code}/summary", headers=key).json()["answers_stored"] == 5
    # delete: gone for the teacher (403, like any wrong key) and for students (404)
    assert client.delete(f"/api/class/{code}", headers=key).json() == {"deleted": True}
    assert client.get(f"/api/class/{code}/summary", headers=key).status_code == 403
    assert client.get(f"/api/class/{code}").status_code == 404
    with db_conn(client) as conn:
        for t in (S.classes, S.students, S.visits, S.answers):
            assert conn.execute(S.sa.select(S.sa.func.count()).select_from(t)).scalar() == 0


def db_conn(client):
    return api.get_store().engine.connect()


def test_keys_refuse_and_reveal_nothing(client):
    code, key = start(client)
    other, _ = start(client, "Other")
    unknown = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    for method, path in [("get", "/summary"), ("get", "/answers.csv"), ("post", "/end"), ("post", "/pin"),
                         ("delete", "")]:
        missing = [client.request(method, f"/api/class/{c}{path}") for c in (code, unknown, "nonsense")]
        assert {r.status_code for r in missing} == {401}
        assert len({r.text for r in missing}) == 1  # the same answer whether or not the class exists
        wrong = [client.request(method, f"/api/class/{c}{path}", headers={"X-Teacher-Key": "guess"})
                 for c in (code, unknown, "nonsense")]
        wrong.append(client.request(method, f"/api/class/{other}{path}", headers=key))  # another class's key
        assert {r.status_code for r in wrong} == {403} and len({r.text for r in wrong}) == 1
    assert client.get(f"/api/class/{code}/summary", headers=key).status_code == 200
    # only a hash of the key is stored
    with db_conn(client) as conn:
        stored = conn.execute(S.sa.select(S.classes.c.key_hash).where(S.classes.c.code == code)).scalar()
    assert stored == S.key_hash(key["X-Teacher-Key"]) and key["X-Teacher-Key"] not in stored
    # students: an unknown code is a 404 with a message
    r = client.post(f"/api/class/{unknown}/join", json={})
    assert r.status_code == 404 and "no class with this code" in r.json()["detail"]
    assert client.get("/api/class/not-a-code").status_code == 404


def test_bad_input_gets_a_clear_message(client):
    code, key = start(client, "<b>Class</b>\x00" + "n" * 500)
    assert len(client.get(f"/api/class/{code}").json()["name"]) <= S.MAX_NAME
    r = client.post(f"/api/class/{code}/join", json={"nickname": "<script>alert(1)</script>\x07\u202e" + "x" * 10000})
    nick = r.json()["nickname"]
    assert len(nick) <= 24 and "\x07" not in nick and "\u202e" not in nick and nick.startswith("<script>")
    sid = r.json()["student"]
    assert client.post(f"/api/class/{code}/join", json={"nickname": 5}).json()["nickname"] == ""
    bad = [({"student": sid, "qid": "test.layer", "page": "/attention", "choice": "layer 9",
             "verdict": verdict("layer 0", "layer 2")}, 422, "not one of the question's options"),
           ({"student": sid, "qid": "nope", "page": "/attention", "choice": "layer 0", "verdict": "✅"}, 422,
            "questions"),
           ({"student": sid, "qid": "test.layer", "page": "/attention", "choice": "layer 0", "verdict": "hello"},
            422, "Not a revealed answer"),
           ({"student": sid, "qid": "test.layer", "page": "/nowhere", "choice": "layer 0",
             "verdict": verdict("layer 0", "layer 2")}, 422, "pages"),
           ({"student": "x" * 500, "qid": "test.layer", "page": "/attention"}, 422, "'student'"),
           ({"student": "not-in-class", "qid": "test.layer", "page": "/attention", "choice": "layer 0",
             "verdict": verdict("layer 0", "layer 2")}, 404, "join it again")]
    for body, status, words in bad:
        r = client.post(f"/api/class/{code}/answer", json=body)
        assert r.status_code == status and words in r.json()["detail"], (body, r.text)
    r = client.post(f"/api/class/{code}/answer", content=b'{"a": "' + b"x" * 50000 + b'"}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    assert client.post(f"/api/class/{code}/answer", content=b"[1, 2", headers={}).status_code == 400
    assert client.get(f"/api/class/{code}/summary", headers=key).json()["answers_stored"] == 0


def test_limits(client, monkeypatch):
    code, key = start(client)
    sid = join(client, code)
    statuses = [send(client, code, sid, "layer 1").status_code for _ in range(42)]  # a flood from one browser
    assert statuses[:40] == [200] * 40 and statuses[-1] == 429
    # guessing codes: after 30 wrong codes or keys, every class request from that address waits
    guesses = [client.post(f"/api/class/{S.new_code()}/join", json={}).status_code for _ in range(31)]
    assert guesses[:30].count(404) >= 29 and guesses[-1] == 429
    assert client.get(f"/api/class/{code}/summary", headers=key).status_code == 429  # even the right key, for now
    monkeypatch.setattr(api, "FAILURES", api.Buckets(rate=30 / 600, burst=30))
    # bounds: students per class, answers per student
    monkeypatch.setattr(S, "MAX_STUDENTS", 2)
    join(client, code)
    r = client.post(f"/api/class/{code}/join", json={})
    assert r.status_code == 409 and "full" in r.json()["detail"]
    monkeypatch.setattr(S, "MAX_ANSWERS", 40)
    monkeypatch.setattr(api, "WRITES", api.Buckets(rate=1.0, burst=40))
    r = send(client, code, sid, "layer 1")
    assert r.status_code == 429 and "the most it records" in r.json()["detail"]
    # classes started from one address
    assert [client.post("/api/class", json={}).status_code for _ in range(10)][-1] == 429


def test_migrations_expiry_and_concurrent_writes(db):
    with db.engine.connect() as conn:
        assert conn.execute(S.sa.select(S.schema_version.c.version)).scalars().all() == [1]
    assert S.migrate(db.engine) == 1  # applied once: starting again changes nothing
    old, _ = db.submit(S.create_class, "old", time.time() - (S.DAYS + 1) * 86400).result()
    new, key = db.submit(S.create_class, "new").result()
    sid = db.submit(S.join, new, "").result()["student"]
    with pytest.raises(S.ClassError) as e:
        db.submit(S.join, old, "").result()
    assert e.value.status == 404  # an expired class is no class
    assert not db.check_key(old, key) and db.check_key(new, key)
    assert db.submit(S.purge_expired).result() == 1
    with db.engine.connect() as conn:
        assert conn.execute(S.sa.select(S.classes.c.code)).scalars().all() == [new]
    # 200 writes from 20 threads at once: group commits, none lost
    sids = [db.submit(S.join, new, "").result()["student"] for _ in range(19)] + [sid]

    def student(s):
        futs = [db.submit(S.answer, new, s, "/attention", f"q{i}", "?", "a", True, "a") for i in range(10)]
        [f.result(30) for f in futs]
    threads = [threading.Thread(target=student, args=(s,)) for s in sids]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert db.summary(new)["answers_stored"] == 200


def test_storage_location(monkeypatch, tmp_path):
    monkeypatch.delenv(S.DB_ENV, raising=False)
    monkeypatch.setenv(S.DATA_ENV, str(tmp_path / "mine"))
    url, notice = S.database_url()
    assert url == f"sqlite:///{tmp_path / 'mine' / 'classes.sqlite3'}" and notice == ""
    monkeypatch.delenv(S.DATA_ENV)
    monkeypatch.setenv("SPACE_ID", "someone/inside-llama")
    folder, notice = S.data_dir()
    if not os.path.isdir("/data"):
        assert folder == Path(tempfile.gettempdir()) / "inside-llama" and "lost when the Space restarts" in notice
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert S.data_dir() == (tmp_path / "xdg" / "inside-llama", "") or sys.platform != "linux"
    monkeypatch.setenv(S.DB_ENV, "postgresql://u:p@h/db")
    assert S.database_url() == ("postgresql+psycopg://u:p@h/db", "")


def test_judge_reads_the_verdicts_of_lessons_grading():
    q = questions.Question("q", "?", ("layer 0", "layer 1", "layer 2"))
    assert questions.judge(q, "layer 1", verdict("layer 1", "layer 1")) == ("layer 1", True, "layer 1")
    assert questions.judge(q, "layer 0", verdict("layer 0", "layer 2")) == ("layer 0", False, "layer 2")
    assert questions.judge(q, "layer 0", verdict(None, "layer 1")) == (None, None, "layer 1")
    tie = "❌ Not this time: you predicted *layer 0*; the measurement says *layer 1* and *layer 2* (a tie: ...)."
    assert questions.judge(q, "layer 0", tie) == ("layer 0", False, "layer 1")
    assert questions.judge(q, "layer 0", r"❌ Not this time: you predicted *layer 0*; the measurement says *layer\ 2*.") \
        == ("layer 0", False, "layer 2")  # Markdown escapes in a shown choice
    with pytest.raises(S.ClassError):
        questions.judge(q, "layer 7", verdict("layer 0", "layer 2"))


# ------------------------------------------------------------------ a server killed mid-class
def _http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _serve(env, port):
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("class_server.py")), str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the class server did not start")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_killed_server_loses_nothing(kind, request, tmp_path):
    env = {**os.environ, S.DB_ENV: new_database(kind, request, tmp_path)}
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api/class"
    proc = _serve(env, port)
    try:
        _, d = _http("POST", url, {"name": "restart"})
        code, key = d["code"], {"X-Teacher-Key": d["teacher_key"]}
        sids = [_http("POST", f"{url}/{code}/join", {"nickname": f"s{i}"})[1]["student"] for i in range(6)]
        for i, sid in enumerate(sids):
            assert _http("POST", f"{url}/{code}/visit", {"student": sid, "page": "/attention"})[0] == 200
            assert _http("POST", f"{url}/{code}/answer", {"student": sid, "qid": "test.layer", "page": "/attention",
                          "choice": LAYERS[i % 3], "verdict": verdict(LAYERS[i % 3], "layer 2")})[0] == 200
        before = _http("GET", f"{url}/{code}/summary", headers=key)[1]
        # mid-class: students keep answering while the server is killed (SIGKILL: no clean shutdown)
        acked, stop = [], threading.Event()

        def keep_answering(sid):
            while not stop.is_set():
                try:
                    status, _ = _http("POST", f"{url}/{code}/answer", {"student": sid, "qid": "test.scale",
                                      "page": "/attention", "choice": "flatter", "verdict": verdict(
                                          "flatter", "sharper", ["sharper", "flatter", "the same"])})
                except OSError:
                    return
                if status == 200:
                    acked.append(sid)
        threads = [threading.Thread(target=keep_answering, args=(sid,)) for sid in sids[:3]]
        [t.start() for t in threads]
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        [t.join(35) for t in threads]
        assert acked, "no answer was acknowledged before the kill"
        proc = _serve(env, port)
        after = _http("GET", f"{url}/{code}/summary", headers=key)[1]
        layer = [q for q in after["questions"] if q["qid"] == "test.layer"]
        assert layer == [q for q in before["questions"] if q["qid"] == "test.layer"]
        for field in ("name", "students_joined", "visits", "pages"):
            assert after[field] == before[field]
        # every acknowledged answer survived (one sent but not acknowledged may be there too)
        assert len(acked) <= after["answers_stored"] - before["answers_stored"] <= len(acked) + 3
        assert _http("GET", f"{url}/{code}/summary", headers={"X-Teacher-Key": "wrong"})[0] == 403
    finally:
        proc.kill()
        proc.wait(10)


# ------------------------------------------------------------------ the real app in a browser
def test_a_class_in_the_browser(app_url, browser):
    """The teacher starts a class on the course map (code, QR, key shown once); a student opens
    /attention?class=CODE, predicts and reveals; the summary has the student, the visit and the prediction."""
    teacher = browser.new_page(viewport={"width": 1366, "height": 768})
    errors = []
    teacher.on("pageerror", lambda e: errors.append(str(e)))
    teacher.goto(app_url)
    teacher.get_by_text("Teach with this course").click()
    teacher.fill("#class-name", "Room <b>12</b>")
    teacher.click("#class-start")
    code = teacher.wait_for_selector("#class-code").inner_text()
    key = teacher.input_value("#class-teacher-key")
    assert S.normalize_code(code) == code and len(key) >= 40
    assert teacher.get_attribute("#class-join-url", "href").endswith(f"/?class={code}")
    assert teacher.get_attribute("#class-dashboard-link", "href").endswith(f"/class?code={code}#key={key}")
    teacher.wait_for_function("() => document.querySelector('.class-qr').naturalWidth > 100")  # the QR code
    student = browser.new_page(viewport={"width": 390, "height": 800})
    student.on("pageerror", lambda e: errors.append(str(e)))
    student.goto(app_url + f"attention?class={code}")
    student.wait_for_selector("#class-banner .class-leave", timeout=120_000)
    assert "Room <b>12</b>" in student.inner_text("#class-banner")  # the name as text, never markup
    student.get_by_label("flatter (higher entropy)").check()
    student.get_by_role("button", name="Reveal").nth(1).click()
    split = student.wait_for_selector(".class-split", timeout=120_000).inner_text()
    assert "1 of your class answered so far" in split
    status, s = _http("GET", app_url + f"api/class/{code}/summary", headers={"X-Teacher-Key": key})
    assert status == 200 and s["students_joined"] == 1 and s["visits"] == {"/attention": 1}
    (q,) = s["questions"]
    assert q["qid"] == Q_SCALE.qid and q["counts"] == {"flatter (higher entropy)": 1}
    assert q["measured"] in q["choices"] and q["right"] == (q["measured"] == "flatter (higher entropy)")
    assert _http("GET", app_url + f"api/class/{code}/summary", headers={"X-Teacher-Key": key[:-1]})[0] == 403
    assert errors == []


def test_a_database_that_goes_away_is_a_message_not_a_500(client, db):
    code, key = start(client)
    sid = join(client, code)
    db.engine.dispose()
    if db.engine.dialect.name == "sqlite":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE answers")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE answers RENAME TO answers_gone")
    r = send(client, code, sid, "layer 1")
    assert r.status_code == 503 and "cannot be reached" in r.json()["detail"]
    assert client.get(f"/api/class/{code}/summary", headers=key).status_code == 503
