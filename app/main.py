"""Entry point: `python -m app.main` (make run) or `python app/main.py` (Hugging Face Spaces)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `python app/main.py` finds llama/ and lessons/

import gradio as gr  # noqa: E402


def build() -> gr.Blocks:
    with gr.Blocks(title="Inside LLaMA") as demo:
        gr.Markdown("# Inside LLaMA\nThe course pages are being built.")
    return demo


if __name__ == "__main__":
    build().launch(server_name=os.environ.get("HOST", "127.0.0.1"), server_port=int(os.environ.get("PORT", 7860)))
