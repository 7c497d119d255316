"""Model cards, and the Hub upload of a saved model with its download by the Auto classes (against the Hub
stand-in of ``tests/hub_server.py``)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TOY_CAPTIONS, hub_env, make_stereo, run_python
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
from transformers import AutoModel, AutoProcessor

from spatial_clap_hf import get_config
from spatial_clap_hf.hub import (
    CARD_TEMPLATE,
    hub_ids,
    push_to_hub,
    render_model_card,
    write_model_card,
)
from spatial_clap_hf.models.spatial_clap.configuration_spatial_clap import PIPELINE_TASK

ROW = {"r1_a2t_sp_src": 0.41, "doa_accuracy": 0.93, "assignment_accuracy": 0.8, "doa_probe_mae_deg": 7.5}


def test_card_carries_conventions_metadata_and_model_index(tmp_path):
    config = get_config("tiny", scl=True)
    path = write_model_card(
        tmp_path,
        config,
        repo_id="someone/spatial-clap-tiny",
        eval_row=ROW,
        base_model=["laion/larger_clap_music_and_speech", "FacebookAI/roberta-base"],
        datasets=["someone/spatialized-audiocaps"],
    )
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == PIPELINE_TASK
    assert data.license == "apache-2.0" and data.language == ["en"]
    assert data.base_model == ["laion/larger_clap_music_and_speech", "FacebookAI/roberta-base"]
    assert data.datasets == ["someone/spatialized-audiocaps"]
    assert {"audio", "spatial-audio", "spatial_clap_hf"} <= set(data.tags)
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == pytest.approx(ROW)
    assert {r.task_type for r in data.eval_results} == {PIPELINE_TASK}
    # The front matter is plain YAML whose model-index huggingface_hub reads back into the same results.
    meta = yaml.safe_load(path.read_text().split("---\n")[1])
    name, parsed = model_index_to_eval_results(meta["model-index"])
    assert name == "spatial-clap-tiny" and eval_results_to_model_index(name, parsed) == meta["model-index"]
    text = card.text
    assert "+90° = left" in text and "Channel 0 is the left microphone" in text and "front from back" in text
    assert f'pipeline("{PIPELINE_TASK}", model="someone/spatial-clap-tiny", trust_remote_code=True)' in text
    assert 'AutoModel.from_pretrained("someone/spatial-clap-tiny", trust_remote_code=True)' in text
    assert "| DoA classification accuracy (5 classes) | 93.00 % |" in text
    assert "| Linear-probe DoA error (degrees) | 7.50 |" in text
    assert "{{" not in path.read_text()


def test_card_without_results_or_sources_has_no_model_index():
    card = render_model_card(get_config("tiny-mono"))
    assert not card.data.eval_results and card.data.base_model is None and card.data.datasets is None
    assert "mono baseline" in card.text and "## Evaluation" not in card.text


def test_hub_ids_keep_repository_ids_and_drop_local_paths(tmp_path, monkeypatch):
    (tmp_path / "runs" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    references = ["FacebookAI/roberta-base", None, "runs/model", str(tmp_path / "runs"), "runs/x/model", "name", "a/b", "a/b"]
    assert hub_ids(references) == ["FacebookAI/roberta-base", "a/b"]


def test_card_templates_are_the_top_level_model_cards_folder():
    from spatial_clap_hf.data.dataset_card import DATASET_CARD_TEMPLATE

    root = Path(__file__).resolve().parents[2] / "model_cards"
    assert CARD_TEMPLATE.read_text() == (root / "spatial_clap.md").read_text()
    assert DATASET_CARD_TEMPLATE.read_text() == (root / "dataset_card.md").read_text()


PUSH = """
import sys
from spatial_clap_hf.hub import push_to_hub
print(push_to_hub(sys.argv[1], "someone/my-model"))
print(push_to_hub(sys.argv[1], "someone/my-model"))  # again: the repository exists, nothing changed
"""

#: Loads the pushed model in a process that never imports the package: the checkpoint's own code.
LOAD = """
import json, sys
import numpy as np, torch
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained("someone/my-model", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("someone/my-model", trust_remote_code=True)
audio = np.load(sys.argv[1])
inputs = processor(text=json.loads(sys.argv[2]), audio=list(audio), sampling_rate=16000, return_tensors="pt", padding=True)
with torch.no_grad():
    out = model(**inputs)
np.savez(sys.argv[3], audio=out.audio_embeds.numpy(), text=out.text_embeds.numpy(), logits=out.logits_per_audio.numpy())
assert "spatial_clap_hf" not in sys.modules
print(type(model).__module__, type(processor).__module__)
"""


def test_push_uploads_the_checkpoint_which_loads_from_the_hub_with_its_own_code(tmp_path, hub, tiny_checkpoint):
    local = shutil.copytree(tiny_checkpoint, tmp_path / "model")
    write_model_card(local, get_config("tiny"), repo_id="someone/my-model")
    env = hub_env(hub, tmp_path / "hf")
    printed = run_python(PUSH, env, str(local)).split()
    assert printed == [f"{hub.endpoint}/someone/my-model"] * 2
    method, path, auth, body, _ = hub.requests[0]
    assert (method, path, auth) == ("POST", "/api/repos/create", "Bearer hf_test_token")
    payload = json.loads(body)
    assert (payload["organization"], payload["name"], payload.get("type", "model")) == ("someone", "my-model", "model")
    assert payload.get("visibility") in (None, "public") and not payload.get("private")
    # The token goes with every Hub call; LFS content goes to the upload URL the batch answer names, without it.
    assert {r.auth for r in hub.requests if not r.path.startswith("/lfs-objects/")} == {"Bearer hf_test_token"}
    # Every file arrives unchanged, the weights through LFS, and the second push adds no commit.
    files = hub.files("someone/my-model")
    assert {p: c for p, c in files.items() if p != ".gitattributes"} == {
        p.name: p.read_bytes() for p in local.iterdir() if p.is_file()
    }
    assert "modeling_spatial_clap.py" in files and "README.md" in files
    assert hub.lfs_files("someone/my-model") == ["model.safetensors"]
    assert hub.history("someone/my-model") == ["initial commit", "Upload Spatial CLAP model"]

    audio = make_stereo(2, 1.5, delays=[3, -3]).numpy()
    np.save(tmp_path / "audio.npy", audio)
    env.pop("PYTHONPATH", None)
    modules = run_python(LOAD, env, str(tmp_path / "audio.npy"), json.dumps(TOY_CAPTIONS[:3]), str(tmp_path / "out.npz"),
                         cwd=tmp_path).split()
    assert all(m.startswith("transformers_modules.someone.my_hyphen_model.") for m in modules), modules
    remote = np.load(tmp_path / "out.npz")
    model = AutoModel.from_pretrained(local).eval()
    processor = AutoProcessor.from_pretrained(local)
    inputs = processor(text=TOY_CAPTIONS[:3], audio=list(audio), sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    for name, value in (("audio", out.audio_embeds), ("text", out.text_embeds), ("logits", out.logits_per_audio)):
        np.testing.assert_allclose(remote[name], value.numpy(), rtol=0, atol=1e-6, err_msg=name)


def test_push_rejects_bad_input_before_the_network(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved model directory"):
        push_to_hub(tmp_path, "someone/x", endpoint="http://127.0.0.1:9")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="user/name"):
        push_to_hub(tmp_path, "no-namespace", endpoint="http://127.0.0.1:9")
