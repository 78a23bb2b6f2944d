"""The Gradio UI of the course: pages, widgets and event wiring only (no tensor maths here)."""
