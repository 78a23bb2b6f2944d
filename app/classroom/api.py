"""Class mode's HTTP side: the JSON API, the teacher's dashboard page, the QR code and the static files, as FastAPI
routes that app/main.py puts in front of Gradio's own (launch(app_kwargs={"routes": routes()})).

    POST   /api/class                      {"name": ...} -> {"code", "teacher_key", "join_url", "dashboard_url"}
    GET    /api/class/{code}/summary       X-Teacher-Key -> joined, active, visits per page, counts per question
    GET    /api/class/{code}/answers.csv   X-Teacher-Key -> every answer (anonymous student numbers)
    POST   /api/class/{code}/end           X-Teacher-Key -> recording stops
    POST   /api/class/{code}/pin           X-Teacher-Key, {"view": "/attention?layer=2"} -> the class's pinned view
    DELETE /api/class/{code}               X-Teacher-Key -> the class and its data are deleted
    GET    /api/questions                  the course's questions: id, text, choices
    GET    /api/class/{code}               (students) name, ended, pinned view; 404 for an unknown code
    POST   /api/class/{code}/join          {"nickname"} -> {"student": random id, ...}
    POST   /api/class/{code}/visit         {"student", "page"}
    POST   /api/class/{code}/answer        {"student", "qid", "page", "choice", "verdict"} -> the class's split
                                           on that question once at least MIN_SHOWN students answered it

A missing key is 401 and a wrong one 403, whether or not the code exists (the same work either way). Failures
(unknown codes, wrong keys) are counted per address in memory and past a limit answered 429; a student's writes are
rate-limited per student id. Addresses are never stored.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from app.classroom import questions as Q
from app.classroom import store as S

STATIC = Path(__file__).with_name("static")
MAX_BODY = 32768  # bytes of a JSON request body (a 10,000-character nickname is cut, not refused)
MIN_SHOWN = 3  # a class's split on a question is shown to students once this many answered it
KEY_HEADER = "X-Teacher-Key"


# ------------------------------------------------------------------ the store, opened once per process
_store: S.Store | None = None
_store_error = ""
_store_lock = threading.Lock()


def get_store() -> S.Store:
    """The process's Store, opened (and migrated) on first use; ClassError 503 when the database cannot be
    opened (the lessons keep working; class mode says why)."""
    global _store, _store_error
    with _store_lock:
        if _store is None:
            try:
                _store = S.Store()
                _store_error = ""
            except Exception as e:  # noqa: BLE001 - any driver error: class mode off, the course on
                _store_error = f"{type(e).__name__}: {e}"[:300]
                print(f"[inside-llama] class mode is unavailable: the database could not be opened ({_store_error})",
                      flush=True)
                raise S.ClassError("Class mode is unavailable on this server: its database could not be opened.",
                                   503) from None
        return _store


def set_store(store: S.Store | None) -> None:
    """Use this Store (tests, the bench); None: open the configured one on next use."""
    global _store
    with _store_lock:
        _store = store


# ------------------------------------------------------------------ rate limits (memory only)
class Buckets:
    """Token buckets by key, at most `size` keys (least recently used dropped): `take(key)` spends one token and
    says whether there was one; tokens come back at `rate` per second up to `burst`."""

    def __init__(self, rate: float, burst: float, size: int = 20000):
        self.rate, self.burst, self.size = rate, burst, size
        self.b: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, t = self.b.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - t) * self.rate)

    def empty(self, key: str) -> bool:
        with self.lock:
            return self._level(key, time.monotonic()) < 1

    def take(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            level = self._level(key, now)
            ok = level >= 1
            self.b[key] = (level - 1 if ok else level, now)
            self.b.move_to_end(key)
            while len(self.b) > self.size:
                self.b.popitem(last=False)
            return ok


FAILURES = Buckets(rate=30 / 600, burst=30)  # unknown codes and wrong keys per address: 30, then 3 a minute
CREATES = Buckets(rate=10 / 3600, burst=10)  # new classes per address: 10, then 10 an hour
WRITES = Buckets(rate=1.0, burst=40)
JOINS = Buckets(rate=2.0, burst=300)  # joins per address (a school's students often share one address)  # a student's visits and answers: 40 at once, then 1 a second


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


TOO_MANY = "Too many tries from this address: wait a few minutes."
UNAVAILABLE = "Class mode's database cannot be reached right now: try again in a minute."


async def _read(fn, *args):
    """Run a read in a worker thread of class mode's own (Gradio's threads stay free for the lessons)."""
    return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=_readers())


_limiter = None


def _readers():
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(8)
    return _limiter


async def _write(store: S.Store, fn, *args):
    return await asyncio.wrap_future(store.submit(fn, *args))


async def _body(request: Request) -> dict:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise S.ClassError(f"The request is too large (at most {MAX_BODY} bytes).", 413)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise S.ClassError(f"The request is too large (at most {MAX_BODY} bytes).", 413)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise S.ClassError("The request body is not JSON.", 400) from None
    if not isinstance(body, dict):
        raise S.ClassError("The request body must be a JSON object.", 400)
    return body


def _text(body: dict, name: str, limit: int, required: bool = True) -> str | None:
    v = body.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v or len(v) > limit:
        raise S.ClassError(f"'{name}' must be text of 1 to {limit} characters.", 422)
    return v


def _root(request: Request) -> str:
    """The app's public URL, without the trailing slash: behind a proxy (a Space) from its X-Forwarded-Host and
    -Proto headers (the first of each), as gradio.route_utils.get_root_url does."""
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    if host:
        return f"{proto or 'https'}://{host}"
    base = str(request.base_url).rstrip("/")
    return ("https" + base[4:]) if proto == "https" and base.startswith("http:") else base


def pages() -> dict[str, str]:
    """Path -> title of the pages a visit may name: the course map and every ready lesson."""
    import lessons

    out = {"/": "Course map"}
    out.update({lesson.path: lesson.title for lesson in lessons.LESSONS if lesson.ready})
    return out


def clean_view(view) -> str | None:
    """A pinned view: a link to one of the course's pages (its path and query; any host is dropped), or None."""
    if not isinstance(view, str) or len(view) > 2000:
        return None
    parts = urlsplit(view.strip())
    path = parts.path.rstrip("/") or "/"
    if path not in pages():
        return None
    return path + (("?" + parts.query) if parts.query else "")


# ------------------------------------------------------------------ routes
router = APIRouter()


def _guarded(fn):
    """Decorator: ClassError -> its JSON message; an address past its failure budget gets 429 first; a 404 (or
    403) counts against the address."""

    import functools

    @functools.wraps(fn)
    async def inner(request: Request, *args, **kwargs):
        addr = _address(request)
        if FAILURES.empty(addr):
            return _error(429, TOO_MANY)
        try:
            return await fn(request, *args, **kwargs)
        except S.ClassError as e:
            if e.status in (403, 404):
                FAILURES.take(addr)
            return _error(e.status, str(e))
        except S.sa.exc.SQLAlchemyError as e:  # the database is down or unreachable: say so, not a 500
            print(f"[inside-llama] class mode: database error {type(e).__name__}: {str(e)[:200]}", flush=True)
            return _error(503, UNAVAILABLE)
    return inner


async def _teacher(request: Request, code: str) -> tuple[S.Store, str]:
    """The store and the normalized code, once the key checks out: 401 without a key, 403 for a wrong key or
    a code that does not exist (the same answer and the same work)."""
    key = request.headers.get(KEY_HEADER, "")
    if not key:
        raise S.ClassError(f"This needs the class's teacher key (header {KEY_HEADER}).", 401)
    store = get_store()
    norm = S.normalize_code(code)
    if not await _read(store.check_key, norm, key[:200]):
        raise S.ClassError("Wrong teacher key for this class.", 403)
    return store, norm


def _student_code(code: str) -> str:
    norm = S.normalize_code(code)
    if norm is None:
        raise S.ClassError("There is no class with this code. Check the code with your teacher.", 404)
    return norm


@router.post("/api/class")
async def create(request: Request):
    try:
        body = await _body(request)
        if not CREATES.take(_address(request)):
            return _error(429, "Too many classes started from this address: wait an hour.")
        store = get_store()
        code, key = await _write(store, S.create_class, body.get("name") or "")
    except S.ClassError as e:
        return _error(e.status, str(e))
    except S.sa.exc.SQLAlchemyError:
        return _error(503, UNAVAILABLE)
    root = _root(request)
    return {"code": code, "teacher_key": key, "join_url": f"{root}/?class={code}",
            "dashboard_url": f"{root}/class?code={code}#key={key}", "expires_in_days": S.DAYS}


@router.get("/api/questions")
async def course_questions():
    """The course's predict-then-reveal questions: id, text, choices (what an answer names)."""
    return [{"qid": q.qid, "question": q.text, "choices": list(q.choices)} for q in Q.QUESTIONS.values()]


@router.get("/api/class/{code}")
@_guarded
async def info(request: Request, code: str):
    return await _read(get_store().info, _student_code(code))


@router.post("/api/class/{code}/join")
@_guarded
async def join(request: Request, code: str):
    body = await _body(request)
    code = _student_code(code)
    if not JOINS.take(_address(request)):  # a whole school may share one address: generous
        return _error(429, TOO_MANY)
    return await _write(get_store(), S.join, code, body.get("nickname") or "")


@router.post("/api/class/{code}/visit")
@_guarded
async def visit(request: Request, code: str):
    body = await _body(request)
    code, sid = _student_code(code), _text(body, "student", 32)
    page = _text(body, "page", 200).rstrip("/") or "/"
    if page not in pages():
        raise S.ClassError("Not one of the course's pages.", 422)
    if not WRITES.take(sid):
        return _error(429, "Too many answers at once: slow down a little.")
    await _write(get_store(), S.visit, code, sid, page)
    return {"recorded": True}


@router.post("/api/class/{code}/answer")
@_guarded
async def answer(request: Request, code: str):
    body = await _body(request)
    code, sid = _student_code(code), _text(body, "student", 32)
    page = (_text(body, "page", 200).rstrip("/") or "/")
    if page not in pages():
        raise S.ClassError("Not one of the course's pages.", 422)
    q = Q.QUESTIONS.get(_text(body, "qid", 120))
    if q is None:
        raise S.ClassError("Not one of the course's questions.", 422)
    choice = body.get("choice")
    if isinstance(choice, (int, float)) and not isinstance(choice, bool):
        choice = str(choice)  # a radio of numbers: the registered choices are their text
    choice, correct, measured = Q.judge(q, choice if choice not in ("", None) else None, body.get("verdict"))
    if correct is not None and choice is None:
        raise S.ClassError("A prediction is missing.", 422)
    if not WRITES.take(sid):
        return _error(429, "Too many answers at once: slow down a little.")
    store = get_store()
    await _write(store, S.answer, code, sid, page, q.qid, q.text, choice, correct, measured)
    split = await _read(store.class_counts, code, q.qid)
    shown = split if split["n"] >= MIN_SHOWN else None
    return {"recorded": True, "class": shown, "answered": split["n"], "min_shown": MIN_SHOWN,
            "choices": list(q.choices)}


@router.get("/api/class/{code}/summary")
@_guarded
async def summary(request: Request, code: str):
    store, code = await _teacher(request, code)
    out = await _read(store.summary, code)
    titles = pages()
    out["pages"] = [{"page": p, "title": t, "visits": out["visits"].get(p, 0)} for p, t in titles.items()]
    for q in out["questions"]:
        known = Q.QUESTIONS.get(q["qid"])
        q["choices"] = list(known.choices) if known else sorted(q["counts"])
        q["page_title"] = titles.get(q["page"], q["page"])
    out["min_shown"] = MIN_SHOWN
    return out


def _cell(v) -> str:
    """A CSV cell a spreadsheet shows as text (a leading = + - @ would be read as a formula)."""
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


@router.get("/api/class/{code}/answers.csv")
@_guarded
async def answers_csv(request: Request, code: str):
    store, code = await _teacher(request, code)
    rows = await _read(store.answer_rows, code)
    numbers: dict[str, int] = {}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "nickname", "page", "question_id", "question", "choice", "correct", "measured_answer",
                "time_utc"])
    for sid, nick, page, qid, question, choice, correct, measured, at in rows:
        n = numbers.setdefault(sid, len(numbers) + 1)  # anonymous: the order of first answers
        w.writerow([f"student {n}", _cell(nick), page, qid, _cell(question), _cell(choice),
                    "" if correct is None else ("yes" if correct else "no"), _cell(measured),
                    datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="class-{code}-answers.csv"'})


@router.post("/api/class/{code}/end")
@_guarded
async def end(request: Request, code: str):
    store, code = await _teacher(request, code)
    await _write(store, S.end_class, code)
    return {"ended": True}


@router.post("/api/class/{code}/pin")
@_guarded
async def pin(request: Request, code: str):
    store, code = await _teacher(request, code)
    body = await _body(request)
    view = body.get("view")
    cleaned = clean_view(view) if view else None
    if view and cleaned is None:
        raise S.ClassError("Pin a link to one of the course's pages (e.g. copied from 'Link to this view').", 422)
    await _write(store, S.pin, code, cleaned)
    return {"pinned": cleaned}


@router.delete("/api/class/{code}")
@_guarded
async def delete(request: Request, code: str):
    store, code = await _teacher(request, code)
    await _write(store, S.delete_class, code)
    return {"deleted": True}


@router.get("/classroom/qr.svg")
async def qr(request: Request, code: str = ""):
    """The join link of a well-formed code as a QR code (made for any well-formed code: it tells nothing)."""
    import segno

    norm = S.normalize_code(code)
    if norm is None:
        return _error(404, "Not a class code.")
    out = io.BytesIO()
    segno.make(f"{_root(request)}/?class={norm}", error="m").save(out, kind="svg", scale=8, border=2,
                                                                    title=f"Join class {norm}")
    return Response(out.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/class", response_class=HTMLResponse)
async def dashboard():
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


_FILES = {"class.js": "text/javascript", "class.css": "text/css", "dashboard.js": "text/javascript"}


@router.get("/classroom/static/{name}")
async def static(name: str):
    if name not in _FILES:
        return _error(404, "Not found.")
    return FileResponse(STATIC / name, media_type=_FILES[name], headers={"Cache-Control": "no-cache"})


def routes() -> list:
    """The routes to put in front of Gradio's; opens the database now (migrations at start), printing why not."""
    if os.environ.get("INSIDE_LLAMA_CLASS_MODE", "1") != "0":
        try:
            store = get_store()
            print(f"[inside-llama] class mode: {store.kind} schema v{store.version}"
                  + (f" ({store.notice})" if store.notice else ""), flush=True)
        except S.ClassError:
            pass
    return list(router.routes)
