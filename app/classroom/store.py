"""Class-mode storage through SQLAlchemy Core: SQLite by default (a file, no server), PostgreSQL when
$INSIDE_LLAMA_DB is a postgresql:// URL (psycopg 3), one code for both.

    store = Store("sqlite:////tmp/classes.sqlite3")      # tables created or migrated now
    code, key = store.submit(create_class, "Physics 3A").result()
    student = store.submit(join, code, "Ada").result()

Writes go through the process's writer threads (`Writer`; one for SQLite): callers hand it a function of a
connection and get a Future; a thread commits what queued up meanwhile in one transaction (a group commit), so a class of sixty
answering at once costs a few commits a second, and a request is answered only after its write is committed
(nothing acknowledged is lost when the server is killed). Reads use pooled connections directly (SQLite in WAL
mode: readers never wait for the writer). No function here knows about HTTP; app/classroom/api.py does.

What is stored (README, "Class mode: what is stored"): a class's code, name, a SHA-256 hash of its teacher key,
times and pinned view; per student a random id, the optional nickname and times; per visit the page; per answer
the question, the choice, right or wrong, the measured answer and the time. No address, no browser fingerprint.
Classes and everything in them are deleted when they expire (30 days after creation by default).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import os
import queue
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

DB_ENV = "INSIDE_LLAMA_DB"  # e.g. postgresql://user:pass@host/db; unset: SQLite in the data folder
DATA_ENV = "INSIDE_LLAMA_DATA"  # folder of the SQLite file
DAYS = float(os.environ.get("INSIDE_LLAMA_CLASS_DAYS", "30"))  # a class and its data live this long
MAX_STUDENTS = int(os.environ.get("INSIDE_LLAMA_CLASS_MAX_STUDENTS", "200"))  # per class
MAX_ANSWERS = int(os.environ.get("INSIDE_LLAMA_CLASS_MAX_ANSWERS", "500"))  # per student, all questions
MAX_NICKNAME = 24
MAX_NAME = 60
ACTIVE_S = 300  # a student seen within this many seconds counts as active now

# Codes students type: no 0/O, 1/I/L or U/V look-alikes. 8 characters from 29: 5.0e11 codes, so a guesser held to
# a few tries a minute (api.py) has no practical chance of landing on one of the live classes.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
CODE_LEN = 8


class ClassError(Exception):
    """An expected refusal (unknown or ended class, full class, bad value), with a message a person can read and
    the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ schema and migrations
metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False))
classes = sa.Table(
    "classes", metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),  # sha256 hex of the teacher key; never the key
    sa.Column("created_at", sa.Float, nullable=False),  # unix seconds
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),  # set by "End class": no more recording
    sa.Column("pinned", sa.String(2000)))  # a lesson view the teacher pinned: path and query
students = sa.Table(
    "students", metadata,
    sa.Column("class_code", sa.String(16), primary_key=True),
    sa.Column("id", sa.String(32), primary_key=True),  # random; the browser keeps it
    sa.Column("nickname", sa.String(MAX_NICKNAME), nullable=False),
    sa.Column("joined_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("n_answers", sa.Integer, nullable=False))
visits = sa.Table(
    "visits", metadata,
    sa.Column("class_code", sa.String(16), primary_key=True),
    sa.Column("student_id", sa.String(32), primary_key=True),
    sa.Column("page", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, nullable=False))
answers = sa.Table(
    "answers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("class_code", sa.String(16), nullable=False),
    sa.Column("student_id", sa.String(32), nullable=False),
    sa.Column("page", sa.String(64), nullable=False),
    sa.Column("qid", sa.String(120), nullable=False),
    sa.Column("question", sa.String(600), nullable=False),
    sa.Column("choice", sa.String(200)),  # None: revealed without a prediction
    sa.Column("correct", sa.Boolean),  # None with no prediction
    sa.Column("answer", sa.String(200)),  # the measured answer that student's page showed
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("answers_by_question", "class_code", "qid"))


def _v1(conn) -> None:
    for t in (classes, students, visits, answers):
        t.create(conn, checkfirst=True)


# Version n is MIGRATIONS[n - 1]. Append a step to change the schema (never edit a released one): every start
# applies the steps a database has not seen, in one transaction.
MIGRATIONS = [_v1]


def migrate(engine: sa.Engine) -> int:
    """Bring the database to the latest schema version; returns it. Several replicas starting at once on
    PostgreSQL take turns (an advisory lock)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(230023)"))
        schema_version.create(conn, checkfirst=True)
        have = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        for n in range(have + 1, len(MIGRATIONS) + 1):
            MIGRATIONS[n - 1](conn)
            conn.execute(schema_version.insert().values(version=n, applied_at=time.time()))
    return len(MIGRATIONS)


# ------------------------------------------------------------------ where the data lives
def data_dir() -> tuple[Path, str]:
    """(folder for the SQLite file, notice). $INSIDE_LLAMA_DATA wins; on a Hugging Face Space the persistent /data
    volume when present, else a temporary folder, with a notice that classes will not survive a restart;
    elsewhere the user's data folder."""
    if os.environ.get(DATA_ENV, "").strip():
        return Path(os.environ[DATA_ENV].strip()).expanduser(), ""
    if os.environ.get("SPACE_ID"):
        if os.path.isdir("/data") and os.access("/data", os.W_OK):
            return Path("/data/inside-llama"), ""
        return Path(tempfile.gettempdir()) / "inside-llama", (
            "This Space has no persistent storage: classes are kept in a temporary folder and are lost when the "
            "Space restarts. Add persistent storage (/data) or set INSIDE_LLAMA_DB to keep them.")
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local" / "share")
    return base / "inside-llama", ""


def database_url() -> tuple[str, str]:
    """(SQLAlchemy URL, notice) from $INSIDE_LLAMA_DB or the default SQLite file."""
    url = os.environ.get(DB_ENV, "").strip()
    if url:
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix):]
        return url, ""
    folder, notice = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'classes.sqlite3'}", notice


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a killed process
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


# ------------------------------------------------------------------ the writer thread
class Writer:
    """The threads that run every write (one for SQLite, which writes one transaction at a time anyway; a few for
    PostgreSQL, where a write's time is mostly round trips to the server). `submit(fn, *args)` queues `fn(conn, *args)` and returns a Future of its
    result. What queued up while a transaction ran is committed together in the next one. A ClassError raised by
    a write (it checks before it writes) fails only its own Future; a database error fails the batch, which is
    then retried one write per transaction so one bad write never takes others with it."""

    def __init__(self, engine: sa.Engine, batch: int = 256, threads: int = 1):
        self.engine, self.batch = engine, batch
        self.q: queue.Queue = queue.Queue()
        for i in range(threads):
            threading.Thread(target=self._loop, name=f"class-writer-{i}", daemon=True).start()

    def submit(self, fn, *args) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.q.put((fut, fn, args))
        return fut

    def _loop(self) -> None:
        while True:
            items = [self.q.get()]
            while len(items) < self.batch:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            try:
                self._run(items)
            except Exception:  # a database error: each write on its own, so only the bad one fails
                for item in items:
                    try:
                        self._run([item])
                    except Exception as e:  # noqa: BLE001 - handed to the caller, who decides
                        if not item[0].done():
                            item[0].set_exception(e)

    def _run(self, items) -> None:
        results = []
        with self.engine.begin() as conn:
            for fut, fn, args in items:
                try:
                    results.append((fut, fn(conn, *args), None))
                except ClassError as e:
                    results.append((fut, None, e))
        for fut, value, err in results:  # only once committed
            if not fut.done():
                fut.set_exception(err) if err is not None else fut.set_result(value)


# ------------------------------------------------------------------ helpers
def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))
    return raw[:4] + "-" + raw[4:]


def normalize_code(text) -> str | None:
    """A typed code in any case, with or without the dash or spaces -> 'ABCD-EFGH'; None when it cannot be one."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    raw = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(raw) != CODE_LEN or any(ch not in ALPHABET for ch in raw):
        return None
    return raw[:4] + "-" + raw[4:]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


_NO_CLASS_HASH = key_hash(secrets.token_urlsafe(32))  # compared against when a code is unknown: same time taken


def clean_nickname(text) -> str:
    """At most 24 printable characters, spaces collapsed; '' (anonymous) for anything else. Shown as text only.

        >>> clean_nickname('  Ada\\x00 <b>L</b>  ' + 'x' * 99)
        'Ada <b>L</b> xxxxxxxxxxx'
    """
    if not isinstance(text, str):
        return ""
    text = "".join(ch if ch.isprintable() else " " for ch in text[:1000])
    return " ".join(text.split())[:MAX_NICKNAME].strip()


def clean_name(text) -> str:
    if not isinstance(text, str):
        return ""
    text = "".join(ch if ch.isprintable() else " " for ch in text[:1000])
    return " ".join(text.split())[:MAX_NAME].strip()


def _insert_ignore(conn, table, **values) -> None:
    """INSERT that does nothing when the row exists (both dialects)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).values(**values).on_conflict_do_nothing())


def _live_class(conn, code: str, now: float):
    """The class row for a student's write: 404 unknown or expired, 410 ended."""
    row = conn.execute(sa.select(classes).where(classes.c.code == code)).mappings().first()
    if row is None or row["expires_at"] < now:
        raise ClassError("There is no class with this code. Check the code with your teacher.", 404)
    if row["ended_at"] is not None:
        raise ClassError("This class has ended: answers are no longer recorded.", 410)
    return row


# ------------------------------------------------------------------ writes (run by the writer: fn(conn, ...))
def create_class(conn, name: str, now: float | None = None) -> tuple[str, str]:
    """A new class: (code, teacher key). Only the key's hash is stored; the key is shown once."""
    now = time.time() if now is None else now
    key = secrets.token_urlsafe(32)
    for _ in range(20):
        code = new_code()
        if conn.execute(sa.select(classes.c.code).where(classes.c.code == code)).first() is None:
            break
    conn.execute(classes.insert().values(code=code, name=clean_name(name) or f"Class {code}", key_hash=key_hash(key),
                                         created_at=now, expires_at=now + DAYS * 86400))
    return code, key


def join(conn, code: str, nickname: str = "", now: float | None = None) -> dict:
    """A student joins: a new random id. Refused past MAX_STUDENTS."""
    now = time.time() if now is None else now
    row = _live_class(conn, code, now)
    n = conn.execute(sa.select(sa.func.count()).select_from(students).where(students.c.class_code == code)).scalar()
    if n >= MAX_STUDENTS:
        raise ClassError(f"This class is full ({MAX_STUDENTS} students): ask your teacher to start another.", 409)
    sid = secrets.token_urlsafe(16)
    nick = clean_nickname(nickname)
    conn.execute(students.insert().values(class_code=code, id=sid, nickname=nick, joined_at=now, last_seen=now,
                                          n_answers=0))
    return {"student": sid, "nickname": nick, "name": row["name"], "code": code}


def _student(conn, code: str, sid: str):
    row = conn.execute(sa.select(students).where(students.c.class_code == code, students.c.id == sid)).mappings().first()
    if row is None:
        raise ClassError("You are not in this class (it may have been deleted): join it again.", 404)
    return row


def _touch(conn, code: str, sid: str, now: float, answered: int = 0) -> None:
    """A student's write, first step, in one statement (one round trip to a PostgreSQL server): mark them active
    (and count an answer) if the class is live, they are in it and under MAX_ANSWERS. When no row matched, the
    checks again one by one, for the message (nothing was written)."""
    live = sa.exists().where(classes.c.code == code, classes.c.ended_at.is_(None), classes.c.expires_at >= now)
    where = [students.c.class_code == code, students.c.id == sid, live]
    if answered:
        where.append(students.c.n_answers < MAX_ANSWERS)
    done = conn.execute(students.update().where(*where).values(
        last_seen=now, n_answers=students.c.n_answers + answered)).rowcount
    if done != 1:
        _live_class(conn, code, now)
        _student(conn, code, sid)
        raise ClassError(f"You have sent {MAX_ANSWERS} answers in this class, the most it records.", 429)


def visit(conn, code: str, sid: str, page: str, now: float | None = None) -> bool:
    """Record that a student opened a page (once per page)."""
    now = time.time() if now is None else now
    _touch(conn, code, sid, now)
    _insert_ignore(conn, visits, class_code=code, student_id=sid, page=page, at=now)
    return True


def answer(conn, code: str, sid: str, page: str, qid: str, question: str, choice, correct, measured,
           now: float | None = None) -> bool:
    """Record one revealed prediction. Refused past MAX_ANSWERS per student."""
    now = time.time() if now is None else now
    _touch(conn, code, sid, now, answered=1)
    conn.execute(answers.insert().values(class_code=code, student_id=sid, page=page, qid=qid, question=question,
                                         choice=choice, correct=correct, answer=measured, at=now))
    return True


def end_class(conn, code: str, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    conn.execute(classes.update().where(classes.c.code == code, classes.c.ended_at.is_(None)).values(ended_at=now))
    return True


def pin(conn, code: str, view: str | None) -> bool:
    conn.execute(classes.update().where(classes.c.code == code).values(pinned=view or None))
    return True


def delete_class(conn, code: str) -> bool:
    for t, col in ((answers, answers.c.class_code), (visits, visits.c.class_code),
                   (students, students.c.class_code), (classes, classes.c.code)):
        conn.execute(t.delete().where(col == code))
    return True


def purge_expired(conn, now: float | None = None) -> int:
    """Delete every class past its expiry, with its students, visits and answers; returns how many."""
    now = time.time() if now is None else now
    codes = [r[0] for r in conn.execute(sa.select(classes.c.code).where(classes.c.expires_at < now))]
    for code in codes:
        delete_class(conn, code)
    return len(codes)


# ------------------------------------------------------------------ the store: engine, writer, reads
class Store:
    """The database of one process: engine, migrations (applied now), the writer thread, and the reads."""

    def __init__(self, url: str | None = None, notice: str = ""):
        if url is None:
            url, notice = database_url()
        self.url, self.notice = url, notice
        self.engine = make_engine(url)
        self.version = migrate(self.engine)
        self.writer = Writer(self.engine, threads=1 if self.engine.dialect.name == "sqlite" else 4)
        self.submit(purge_expired).result(60)
        self._purged = time.time()

    @property
    def kind(self) -> str:
        return "PostgreSQL" if self.engine.dialect.name == "postgresql" else "SQLite"

    def submit(self, fn, *args) -> concurrent.futures.Future:
        if time.time() - getattr(self, "_purged", time.time()) > 3600:  # hourly, on the way
            self._purged = time.time()
            self.writer.submit(purge_expired)
        return self.writer.submit(fn, *args)

    def close(self) -> None:
        self.engine.dispose()

    # reads
    def check_key(self, code: str | None, key: str | None) -> bool:
        """Constant-time comparison of the key's hash with the stored hash; False for an unknown or expired code
        after the same work, so the answer tells nothing about whether the code exists."""
        stored = _NO_CLASS_HASH
        if code:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(classes.c.key_hash, classes.c.expires_at)
                                   .where(classes.c.code == code)).first()
            if row is not None and row[1] >= time.time():
                stored = row[0]
        ok = hmac.compare_digest(key_hash(key or ""), stored)
        return ok and stored != _NO_CLASS_HASH

    def info(self, code: str) -> dict:
        """What a student may know: name, ended, pinned view. ClassError 404 for an unknown or expired code."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(classes).where(classes.c.code == code)).mappings().first()
        if row is None or row["expires_at"] < time.time():
            raise ClassError("There is no class with this code. Check the code with your teacher.", 404)
        return {"code": code, "name": row["name"], "ended": row["ended_at"] is not None, "pinned": row["pinned"]}

    def class_counts(self, code: str, qid: str) -> dict:
        """{choice: n} of each student's first prediction on one question, and n."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._first_answers(code).where(answers.c.qid == qid)
                                .group_by(answers.c.qid, answers.c.choice)).all()
        counts = {c: n for _, c, n, _ in rows if c is not None}
        return {"counts": counts, "n": sum(counts.values())}

    @staticmethod
    def _first_answers(code: str):
        """SELECT qid, choice, count, right count over each student's first answer per question."""
        first = (sa.select(sa.func.min(answers.c.id)).where(answers.c.class_code == code)
                 .group_by(answers.c.student_id, answers.c.qid))
        return (sa.select(answers.c.qid, answers.c.choice, sa.func.count(),
                          sa.func.sum(sa.case((answers.c.correct.is_(True), 1), else_=0)))
                .where(answers.c.class_code == code, answers.c.id.in_(first)))

    def summary(self, code: str, now: float | None = None) -> dict:
        """Everything the dashboard shows (the teacher's key has been checked by the caller)."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            cls = conn.execute(sa.select(classes).where(classes.c.code == code)).mappings().first()
            if cls is None:
                raise ClassError("There is no class with this code.", 404)
            joined, active, n_answers = conn.execute(sa.select(  # one round trip
                sa.select(sa.func.count()).select_from(students).where(students.c.class_code == code)
                .scalar_subquery(),
                sa.select(sa.func.count()).select_from(students).where(
                    students.c.class_code == code, students.c.last_seen >= now - ACTIVE_S).scalar_subquery(),
                sa.select(sa.func.count()).select_from(answers).where(answers.c.class_code == code)
                .scalar_subquery())).one()
            pages = conn.execute(sa.select(visits.c.page, sa.func.count()).where(visits.c.class_code == code)
                                 .group_by(visits.c.page)).all()
            firsts = conn.execute(self._first_answers(code).group_by(answers.c.qid, answers.c.choice)).all()
            # per question: its text, page and the measured answers students saw (any answer row, picks or not)
            meta = conn.execute(sa.select(answers.c.qid, sa.func.min(answers.c.question), sa.func.min(answers.c.page),
                                          sa.func.min(answers.c.at)).where(answers.c.class_code == code)
                                .group_by(answers.c.qid)).all()
            measured = conn.execute(sa.select(answers.c.qid, answers.c.answer, sa.func.count())
                                    .where(answers.c.class_code == code, answers.c.answer.is_not(None))
                                    .group_by(answers.c.qid, answers.c.answer)).all()
        questions = {}
        for qid, question, page, first_at in sorted(meta, key=lambda r: r[3]):
            questions[qid] = {"qid": qid, "question": question, "page": page, "counts": {}, "right": 0,
                              "no_pick": 0, "answered": 0, "measured": None, "measured_all": {}}
        for qid, choice, n, right in firsts:
            q = questions[qid]
            if choice is None:
                q["no_pick"] += n
            else:
                q["counts"][choice] = n
                q["answered"] += n
                q["right"] += int(right or 0)
        for qid, ans, n in measured:
            questions[qid]["measured_all"][ans] = n
        for q in questions.values():
            if q["measured_all"]:  # what most students' pages measured (pages computed on other text can differ)
                q["measured"] = max(q["measured_all"].items(), key=lambda kv: (kv[1], kv[0]))[0]
        return {"code": code, "name": cls["name"], "created_at": cls["created_at"], "expires_at": cls["expires_at"],
                "ended": cls["ended_at"] is not None, "pinned": cls["pinned"], "students_joined": joined,
                "students_active": active, "answers_stored": n_answers,
                "visits": {p: n for p, n in sorted(pages)}, "questions": list(questions.values()),
                "storage": self.kind, "notice": self.notice}

    def answer_rows(self, code: str):
        """Every answer of a class, oldest first: (student, nickname, page, qid, question, choice, correct,
        measured, time)."""
        with self.engine.connect() as conn:
            q = (sa.select(answers.c.student_id, students.c.nickname, answers.c.page, answers.c.qid,
                           answers.c.question, answers.c.choice, answers.c.correct, answers.c.answer, answers.c.at)
                 .select_from(answers.outerjoin(students, sa.and_(students.c.class_code == answers.c.class_code,
                                                                  students.c.id == answers.c.student_id)))
                 .where(answers.c.class_code == code).order_by(answers.c.id))
            return conn.execute(q).all()
