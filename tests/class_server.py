"""Class mode's API alone, served by uvicorn (the routes app/main.py puts in front of Gradio's, on the database
$INSIDE_LLAMA_DB or the SQLite file in $INSIDE_LLAMA_DATA), with the questions tests/test_classroom.py uses:

    python tests/class_server.py PORT
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from app.classroom import api, questions  # noqa: E402

QUESTIONS = [("test.layer", "Which layer holds the previous-token head?", ["layer 0", "layer 1", "layer 2"]),
             ("test.scale", "Without the scale, attention gets", ["sharper", "flatter", "the same"])]


def register() -> None:
    for qid, text, choices in QUESTIONS:
        questions.add(text, choices, qid=qid)


if __name__ == "__main__":
    register()
    uvicorn.run(FastAPI(routes=api.routes()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
