"""Spatial CLAP demo: where is the sound? (a Gradio app, ready to run as a Hugging Face Space).

Upload a stereo clip (or pick an example), type what to look for, and see how likely each
direction is — front at the top, left on the left — plus the ranking of optional
candidate labels. The model runs from the checkpoint's own code
(``trust_remote_code=True``): the Space installs only published packages (requirements.txt),
never ``spatial_clap_hf``. The analysis is in ``spatial_where.py``; this file wires the UI.

Environment:
    SPATIAL_CLAP_MODEL   checkpoint: Hub id or save_pretrained directory (default: DEFAULT_MODEL)
    SPATIAL_CLAP_DEVICE  torch device, or "auto" (default: CUDA when available)
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT   where to serve (Gradio's own variables)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gradio as gr
import torch
from transformers import pipeline

from spatial_where import analyse_clip

#: The checkpoint served by default (also listed under ``models:`` in README.md's front matter).
DEFAULT_MODEL = "spatial-clap-hf/spatial-clap-seld-scl"
TASK = "zero-shot-spatial-audio-classification"
EXAMPLES_DIR = Path(__file__).parent / "examples"


def load_examples(directory: Path = EXAMPLES_DIR) -> list[list[str]]:
    """Example rows ``[wav path, description, labels]`` from ``examples.json`` (see make_examples.py)."""
    index = directory / "examples.json"
    if not index.is_file():
        return []
    return [[str(directory / e["file"]), e["description"], e["labels"]] for e in json.loads(index.read_text())]


def load_pipeline(model: str | None = None, device: str | None = None):
    """The zero-shot spatial pipeline of ``model`` (default ``SPATIAL_CLAP_MODEL``, else ``DEFAULT_MODEL``)."""
    model = model or os.environ.get("SPATIAL_CLAP_MODEL") or DEFAULT_MODEL
    device = device or os.environ.get("SPATIAL_CLAP_DEVICE", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return pipeline(TASK, model=model, device=device, trust_remote_code=True)


def build_demo(model: str | None = None, device: str | None = None) -> gr.Blocks:
    """The Gradio Blocks app for a checkpoint (Hub id or directory)."""
    classifier = load_pipeline(model, device)

    def run(audio_path, description, labels):
        try:
            result = analyse_clip(classifier, audio_path, description, labels)
        except ValueError as err:  # bad input: shown to the user, not a crash
            raise gr.Error(str(err)) from err
        return result.figure, result.summary, result.labels or None

    with gr.Blocks(title="Spatial CLAP: where is the sound?") as demo:
        gr.Markdown(
            "# Spatial CLAP: where is the sound?\n"
            "Upload a **stereo** clip (channel 0 = left microphone) or pick an example, describe the sound, "
            "and see how likely each direction is. A stereo pair cannot tell front from back, so directions "
            "cover the front half: left, front-left, front, front-right, right."
        )
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(type="filepath", label="Stereo clip", elem_id="clip")
                description = gr.Textbox(label="What to look for", placeholder="a dog barking", elem_id="description")
                labels = gr.Textbox(
                    label="Candidate labels (optional, comma-separated)",
                    placeholder="a dog barking, a car horn, rain",
                    elem_id="labels",
                )
                button = gr.Button("Locate", variant="primary", elem_id="locate")
            with gr.Column():
                plot = gr.Plot(label="Direction (front at the top)", format="png", elem_id="direction-plot")
                summary = gr.Markdown(elem_id="summary")
                top = gr.Label(label="Top labels", num_top_classes=5, elem_id="top-labels")
        examples = load_examples()
        if examples:
            gr.Examples(
                examples=examples,
                inputs=[audio, description, labels],
                outputs=[plot, summary, top],
                fn=run,
                cache_examples=False,
                run_on_click=True,
                elem_id="examples",
            )
        button.click(run, inputs=[audio, description, labels], outputs=[plot, summary, top])
    return demo


if __name__ == "__main__":
    build_demo().launch()
