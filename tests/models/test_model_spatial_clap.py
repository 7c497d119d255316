import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoModel,
    BertConfig,
    ClapAudioModel,
    ClapConfig,
    ClapModel,
    RobertaConfig,
    RobertaModel,
)

from conftest import TOY_CAPTIONS, make_stereo
from spatial_clap_hf import (
    SeldNetConfig,
    SeldNetForSoundEventLocalization,
    SeldNetModel,
    SpatialClapModel,
    contrastive_loss,
    create_model,
    get_config,
)
from spatial_clap_hf.models.presets import _tiny_source, _tiny_spatial, _tiny_text

CHEAP_PRESETS = ["tiny", "tiny-mono"]


def _text_batch(tokenizer, captions):
    return tokenizer(captions, padding=True, return_tensors="pt")


@pytest.mark.parametrize("preset", CHEAP_PRESETS)
def test_forward_shapes_and_normalised_embeddings(preset, caption_tokenizer):
    torch.manual_seed(0)
    model = create_model(preset).eval()
    text = _text_batch(caption_tokenizer, TOY_CAPTIONS[:3])
    audio = make_stereo(3, 2.0, delays=[3, 0, -3])
    with torch.no_grad():
        out = model(input_ids=text.input_ids, attention_mask=text.attention_mask, input_values=audio, return_loss=True)
    assert out.logits_per_audio.shape == (3, 3)
    assert torch.equal(out.logits_per_text, out.logits_per_audio.t())
    assert out.audio_embeds.shape == out.text_embeds.shape == (3, 32)
    assert torch.allclose(out.audio_embeds.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out.text_embeds.norm(dim=-1), torch.ones(3), atol=1e-5)
    scale = model.logit_scale.exp()
    assert torch.isclose(scale, torch.tensor(1 / 0.07))
    assert torch.allclose(out.logits_per_audio, scale * out.audio_embeds @ out.text_embeds.t(), atol=1e-5)
    assert torch.isfinite(out.loss)
    spatial = out.audio_model_output.spatial_model_output
    assert (spatial is None) == (preset == "tiny-mono")
    fused_width = 32 + (64 if preset == "tiny" else 0)
    assert out.audio_model_output.last_hidden_state.shape == (3, fused_width)


@pytest.mark.parametrize("preset", CHEAP_PRESETS)
def test_get_features_match_forward(preset, caption_tokenizer):
    model = create_model(preset).eval()
    text = _text_batch(caption_tokenizer, TOY_CAPTIONS[:2])
    audio = make_stereo(2, 1.5)
    with torch.no_grad():
        out = model(input_ids=text.input_ids, attention_mask=text.attention_mask, input_values=audio)
        audio_features = model.get_audio_features(input_values=audio)
        text_features = model.get_text_features(text.input_ids, text.attention_mask)
    assert torch.allclose(audio_features.pooler_output, out.audio_embeds, atol=1e-6)
    assert torch.allclose(text_features.pooler_output, out.text_embeds, atol=1e-6)
    assert text_features.last_hidden_state.shape[:2] == text.input_ids.shape


def test_fusion_source_config_runs_with_replicated_mel(caption_tokenizer):
    model = create_model("tiny-mono", source_config={"enable_fusion": True, "fusion_type": "aff_2d"}).eval()
    with torch.no_grad():
        features, is_longer = model.source_frontend(make_stereo(2, 1.0))
        out = model.get_audio_features(make_stereo(2, 1.0))
    assert features.shape[1] == 4 and torch.equal(features[:, 0], features[:, 3]) and not is_longer.any()
    assert out.pooler_output.shape == (2, 32)


def test_contrastive_loss_is_symmetric_infonce():
    logits = torch.tensor([[3.0, 0.5, -1.0], [0.2, 2.0, 0.1], [1.5, -0.3, 0.7]])
    labels = torch.arange(3)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    assert torch.isclose(contrastive_loss(logits), expected)
    assert contrastive_loss(100 * torch.eye(4)) < 1e-6
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.zeros(2, 3))


def test_mean_pooling_ignores_padding(tiny_model, caption_tokenizer):
    single = _text_batch(caption_tokenizer, ["A dog barks."])
    padded_ids = torch.cat([single.input_ids, torch.full((1, 5), caption_tokenizer.pad_token_id)], dim=1)
    padded_mask = torch.cat([single.attention_mask, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = tiny_model.get_text_features(single.input_ids, single.attention_mask).pooler_output
        b = tiny_model.get_text_features(padded_ids, padded_mask).pooler_output
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "pooler"])
def test_other_text_poolings(pooling, caption_tokenizer):
    model = create_model("tiny-mono", text_pooling=pooling).eval()
    text = _text_batch(caption_tokenizer, TOY_CAPTIONS[:2])
    with torch.no_grad():
        out = model.get_text_features(text.input_ids, text.attention_mask)
        raw = model.text_model(input_ids=text.input_ids, attention_mask=text.attention_mask)
    pooled = raw.last_hidden_state[:, 0] if pooling == "cls" else raw.pooler_output
    assert torch.allclose(out.pooler_output, F.normalize(model.text_projection(pooled), dim=-1), atol=1e-6)


def test_sentence_segments_split_at_separator_and_keep_eos_with_last_sentence():
    from spatial_clap_hf.models.spatial_clap.modeling_spatial_clap import sentence_segments

    # <s> A b . c d . </s> <pad>   |   <s> A b . c d </s> <pad> <pad>   |   <pad> <s> A b </s> (left-padded, no ".")
    ids = torch.tensor([[0, 5, 6, 9, 7, 8, 9, 2, 1], [0, 5, 6, 9, 7, 8, 2, 1, 1], [1, 0, 5, 6, 2, 1, 1, 1, 1]])
    mask = torch.tensor([[1] * 8 + [0], [1] * 7 + [0] * 2, [0, 1, 1, 1, 1, 0, 0, 0, 0]])
    expected = torch.tensor(
        [[0, 0, 0, 0, 1, 1, 1, 1, -1], [0, 0, 0, 0, 1, 1, 1, -1, -1], [-1, 0, 0, 0, 0, -1, -1, -1, -1]]
    )
    assert torch.equal(sentence_segments(ids, mask, separator_id=9), expected)


def test_sentence_pooling_projects_each_sentence_then_sums(caption_tokenizer):
    torch.manual_seed(0)
    period = caption_tokenizer(".", add_special_tokens=False)["input_ids"][0]
    model = create_model("tiny-mono", text_pooling="sentence", text_sentence_separator_id=period).eval()
    mean_model = create_model("tiny-mono").eval()
    mean_model.load_state_dict(model.state_dict())
    captions = ["A dog barks on the left side. A bird sings on the right side.", "A dog barks in front."]
    text = _text_batch(caption_tokenizer, captions)
    with torch.no_grad():
        out = model.get_text_features(text.input_ids, text.attention_mask).pooler_output
        hidden = model.text_model(input_ids=text.input_ids, attention_mask=text.attention_mask).last_hidden_state
        single = mean_model.get_text_features(text.input_ids[1:], text.attention_mask[1:]).pooler_output
    ids = text.input_ids[0].tolist()
    cut = ids.index(period) + 1  # first sentence: <s> ... "."; the second runs to </s>
    length = int(text.attention_mask[0].sum())
    parts = [hidden[0, :cut].mean(0), hidden[0, cut:length].mean(0)]
    expected = F.normalize(sum(model.text_projection(p) for p in parts), dim=-1)
    assert torch.allclose(out[0], expected, atol=1e-5)
    # One sentence: the same as mean pooling.
    assert torch.allclose(out[1], single[0], atol=1e-5)


def test_sentence_pooling_without_separator_id_says_how_to_set_it(caption_tokenizer):
    model = create_model("tiny-mono", text_pooling="sentence").eval()
    text = _text_batch(caption_tokenizer, ["A dog barks."])
    with pytest.raises(ValueError, match="text_sentence_separator_id"):
        model.get_text_features(text.input_ids, text.attention_mask)


def test_spatial_readout_widens_the_fusion_and_needs_the_stage1_heads():
    model = create_model("tiny", spatial_readout_bins=6)
    spatial = model.config.spatial_config
    assert model.config.spatial_hidden_size == spatial.output_size + 6 * spatial.num_classes
    assert model.fusion.linear1.in_features == model.config.source_hidden_size + model.config.spatial_hidden_size
    with pytest.raises(ValueError, match="heads"):
        model.load_spatial_encoder(SeldNetModel(spatial))
    with torch.no_grad():
        out = model.eval().get_audio_features(make_stereo(2, 1.0, delays=[3, -3]))
    assert out.last_hidden_state.shape[-1] == model.fusion.linear1.in_features
    # The readout enters the fusion standardised per clip, and it is the heads' map: it follows them.
    readout = out.last_hidden_state[:, -6 * spatial.num_classes :]
    torch.testing.assert_close(readout.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(readout.var(-1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    expected = model.spatial_readout.class_direction_map(out.spatial_model_output)
    torch.testing.assert_close(readout, torch.nn.functional.layer_norm(expected, expected.shape[-1:]))
    with pytest.raises(ValueError, match="spatial_readout_bins"):
        get_config("tiny", spatial_readout_bins=1)


def test_readout_mean_doa_adds_two_features_per_class_after_the_map():
    model = create_model("tiny", spatial_readout_bins=6, spatial_readout_mean_doa=True).eval()
    spatial = model.config.spatial_config
    assert model.config.spatial_hidden_size == spatial.output_size + 8 * spatial.num_classes
    assert model.fusion.linear1.in_features == model.config.source_hidden_size + model.config.spatial_hidden_size
    with torch.no_grad():
        out = model.get_audio_features(make_stereo(2, 1.0, delays=[3, -3]))
    tail = out.last_hidden_state[:, -8 * spatial.num_classes :]
    torch.testing.assert_close(tail, model.spatial_readout(out.spatial_model_output))
    mean = tail[:, -2 * spatial.num_classes : -spatial.num_classes]
    assert mean.abs().max() <= 1.0  # units of 90 degrees
    with pytest.raises(ValueError, match="spatial_readout_bins >= 2"):
        get_config("tiny", spatial_readout_mean_doa=True)


def test_any_text_encoder_config():
    bert = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    model = create_model("tiny-mono", text_config=bert.to_dict()).eval()
    assert type(model.text_model).__name__ == "BertModel"
    with torch.no_grad():
        out = model.get_text_features(torch.randint(0, 100, (2, 6)), torch.ones(2, 6, dtype=torch.long))
    assert out.pooler_output.shape == (2, 32)


def test_bad_audio_input_raises(tiny_model, caption_tokenizer):
    with pytest.raises(ValueError, match="1 channel\\(s\\) but the spatial encoder expects 2"):
        tiny_model.get_audio_features(torch.randn(1, 1, 16000))
    with pytest.raises(ValueError, match="\\(batch, channels, samples\\)"):
        tiny_model.get_audio_features(torch.randn(2, 16000))
    with pytest.raises(ValueError, match="accepts at most"):
        tiny_model.get_audio_features(torch.randn(1, 2, 6 * 16000))
    with pytest.raises(ValueError, match="needs both input_ids and input_values"):
        tiny_model(input_values=torch.randn(1, 2, 16000))


def test_contrastive_training_loss_falls(caption_tokenizer):
    torch.manual_seed(0)
    model = create_model("tiny", logit_scale_init_value=10.0).train()
    text = _text_batch(caption_tokenizer, TOY_CAPTIONS[:4])
    audio = make_stereo(4, 0.5, delays=[4, -4, 0, 2], seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        out = model(input_ids=text.input_ids, attention_mask=text.attention_mask, input_values=audio, return_loss=True)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_save_and_reload_same_process(tiny_model, tmp_path, caption_tokenizer):
    tiny_model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, SpatialClapModel)
    text = _text_batch(caption_tokenizer, TOY_CAPTIONS[:2])
    audio = make_stereo(2, 1.0)
    with torch.no_grad():
        a = tiny_model(input_ids=text.input_ids, attention_mask=text.attention_mask, input_values=audio)
        b = reloaded(input_ids=text.input_ids, attention_mask=text.attention_mask, input_values=audio)
    assert torch.equal(a.logits_per_audio, b.logits_per_audio)
    for name in ("mel_filters", "window"):
        assert torch.equal(getattr(tiny_model.source_frontend.log_mel, name), getattr(reloaded.source_frontend.log_mel, name))


# ------------------------------------------------------------------ building from pretrained parts
@pytest.fixture
def part_checkpoints(tmp_path):
    """A tiny ClapModel, ClapAudioModel, RobertaModel and SELD model saved side by side."""
    torch.manual_seed(1)
    clap_config = ClapConfig(
        audio_config=_tiny_source(),
        text_config={"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16},
        projection_dim=16,
    )
    clap = ClapModel(clap_config)
    clap.save_pretrained(tmp_path / "clap")
    clap.audio_model.save_pretrained(tmp_path / "clap_audio")
    roberta_config = RobertaConfig(**{k: v for k, v in _tiny_text().items() if k != "model_type"})
    roberta = RobertaModel(roberta_config)
    roberta.save_pretrained(tmp_path / "roberta")
    seld = SeldNetForSoundEventLocalization(SeldNetConfig(**_tiny_spatial()))
    seld.save_pretrained(tmp_path / "seld")
    return {"path": tmp_path, "clap": clap, "roberta": roberta, "seld": seld}


def _assert_same_weights(part: torch.nn.Module, tower: torch.nn.Module, dropped: tuple[str, ...] = ()) -> None:
    """Every tower tensor equals the part's; only keys starting with ``dropped`` are left out."""
    tower_state = tower.state_dict()
    part_state = {k: v for k, v in part.state_dict().items() if not k.startswith(dropped)} if dropped else part.state_dict()
    assert part_state.keys() == tower_state.keys()
    for name, tensor in part_state.items():
        assert torch.equal(tensor, tower_state[name]), name


def test_from_pretrained_parts_copies_tower_weights(part_checkpoints):
    path = part_checkpoints["path"]
    model = SpatialClapModel.from_pretrained_parts(
        path / "clap", path / "roberta", path / "seld", max_length_s=4.0, fusion_hidden_size=48, projection_dim=24
    )
    _assert_same_weights(part_checkpoints["clap"].audio_model, model.source_model)
    # Mean pooling (the default) leaves RoBERTa's pooler out of the tower.
    _assert_same_weights(part_checkpoints["roberta"], model.text_model, dropped=("pooler.",))
    _assert_same_weights(part_checkpoints["seld"].seldnet, model.spatial_model)
    assert model.config.spatial_encoder == "seld" and model.config.projection_dim == 24
    pooled = SpatialClapModel.from_pretrained_parts(path / "clap", path / "roberta", text_pooling="pooler", max_length_s=4.0)
    _assert_same_weights(part_checkpoints["roberta"], pooled.text_model)
    model.eval()
    with torch.no_grad():
        z_src = model.get_audio_features(make_stereo(1, 1.0)).source_model_output.pooler_output
        features, is_longer = model.source_frontend(make_stereo(1, 1.0))
        reference = part_checkpoints["clap"].audio_model.eval()(input_features=features, is_longer=is_longer).pooler_output
    assert torch.allclose(z_src, reference, atol=1e-6)


def test_from_pretrained_parts_accepts_audio_only_clap_and_no_spatial(part_checkpoints):
    path = part_checkpoints["path"]
    model = SpatialClapModel.from_pretrained_parts(path / "clap_audio", path / "roberta", max_length_s=4.0, projection_dim=24)
    assert model.spatial_model is None and model.config.spatial_encoder == "none"
    _assert_same_weights(part_checkpoints["clap"].audio_model, model.source_model)
    with pytest.raises(ValueError, match="not a CLAP checkpoint"):
        SpatialClapModel.from_pretrained_parts(path / "roberta", path / "roberta", max_length_s=4.0)
    with pytest.raises(ValueError, match="comes from the pretrained checkpoint"):
        SpatialClapModel.from_pretrained_parts(path / "clap", path / "roberta", text_config={})


def test_paper_preset_config_builds_model_on_meta():
    with torch.device("meta"):
        model = create_model("paper-mono")
    assert model.spatial_model is None
    assert model.fusion.linear1.in_features == get_config("paper").source_hidden_size
    assert isinstance(model.source_model, ClapAudioModel)
