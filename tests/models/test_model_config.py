import pytest
import torch
from transformers import AutoConfig, BertConfig, ClapAudioConfig, RobertaConfig

from spatial_clap_hf import SeldNetConfig, SpatialClapConfig, create_model, get_config, list_presets


def test_seldnet_config_roundtrip(tmp_path):
    config = SeldNetConfig(num_classes=5, input_features="mag_ipd", max_frequency_bins=200, conv_filters=(8, 16, 32))
    restored = SeldNetConfig.from_dict(config.to_dict())
    assert restored.to_dict() == config.to_dict()
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, SeldNetConfig)
    assert loaded.conv_filters == [8, 16, 32] and loaded.max_frequency_bins == 200
    assert loaded.num_input_planes == 4 and loaded.output_size == 256


def test_seldnet_config_derived_sizes():
    config = SeldNetConfig()
    assert config.num_frequency_bins == 513
    assert config.pooled_frequency_bins == 513 // 8 // 8 // 2
    assert SeldNetConfig(num_channels=3, input_features="mag_ipd").num_input_planes == 3 + 4
    assert SeldNetConfig(num_channels=3).num_input_planes == 6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_features": "stft"}, "input_features"),
        ({"doa_mode": "frames"}, "doa_mode"),
        ({"num_channels": 1, "input_features": "mag_ipd"}, "at least 2 channels"),
        ({"max_frequency_bins": 8}, "leave no bin"),
        ({"max_frequency_bins": 600}, "max_frequency_bins"),
        ({"num_classes": 0}, "per_class"),
        ({"conv_filters": [8, 8], "frequency_pool_sizes": [2, 2, 2]}, "one frequency pool size per conv block"),
    ],
)
def test_seldnet_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SeldNetConfig(**kwargs)


@pytest.mark.parametrize("name", ["tiny", "tiny-mono", "paper", "paper-mono"])
def test_spatial_clap_config_roundtrip(name, tmp_path):
    config = get_config(name)
    restored = SpatialClapConfig.from_dict(config.to_dict())
    assert restored.to_dict() == config.to_dict()
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, SpatialClapConfig)
    assert loaded.to_dict() == {**config.to_dict(), "_name_or_path": loaded._name_or_path}
    assert isinstance(loaded.source_config, ClapAudioConfig)
    assert isinstance(loaded.text_config, RobertaConfig)
    if config.spatial_encoder == "none":
        assert loaded.spatial_config is None
    else:
        assert isinstance(loaded.spatial_config, SeldNetConfig)


def test_spatial_clap_config_defaults_and_any_text_config():
    config = SpatialClapConfig()
    assert isinstance(config.text_config, RobertaConfig)
    assert isinstance(config.spatial_config, SeldNetConfig)
    assert config.source_hidden_size == 768 and config.spatial_hidden_size == 256
    bert = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    config = SpatialClapConfig(text_config=bert.to_dict(), spatial_encoder="doa")
    assert isinstance(config.text_config, BertConfig) and config.text_config.hidden_size == 32
    assert SpatialClapConfig.from_dict(config.to_dict()).text_config.model_type == "bert"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spatial_encoder": "gcc"}, "spatial_encoder"),
        ({"spatial_encoder": "none", "spatial_config": {"num_classes": 3}}, "drop spatial_config"),
        ({"text_pooling": "max"}, "text_pooling"),
        ({"max_length_s": 11.0}, "lower max_length_s"),
        ({"sample_rate": 8000, "spatial_config": {"sample_rate": 16000}}, "both towers read the same waveform"),
        ({"logit_scale_init_value": 0.0}, "logit_scale_init_value"),
    ],
)
def test_spatial_clap_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpatialClapConfig(**kwargs)


def test_presets_listed_and_overridable():
    assert {"tiny", "tiny-mono", "paper", "paper-mono"} <= set(list_presets())
    config = get_config("tiny", projection_dim=16, spatial_config={"input_features": "mag_phase"}, scl=True)
    assert config.projection_dim == 16 and config.scl
    assert config.spatial_config.input_features == "mag_phase"
    assert config.spatial_config.conv_filters == [16, 16, 16]  # merged, not replaced
    assert get_config("tiny", spatial_encoder="none").spatial_config is None
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        get_config("huge")


def test_paper_preset_dimensions_without_allocating():
    config = get_config("paper")
    src = config.source_config
    assert (src.patch_embeds_hidden_size, list(src.depths), list(src.num_attention_heads)) == (128, [2, 2, 12, 2], [4, 8, 16, 32])
    assert (src.num_mel_bins, src.spec_size, src.enable_fusion) == (64, 256, False)
    assert config.source_hidden_size == 1024
    assert config.source_frames(config.max_length_samples) == 1001 <= config.max_source_frames
    txt = config.text_config
    assert (txt.hidden_size, txt.num_hidden_layers, txt.vocab_size, txt.max_position_embeddings) == (768, 12, 50265, 514)
    sp = config.spatial_config
    assert (sp.conv_filters, sp.gru_hidden_size, sp.gru_num_layers, sp.num_classes) == ([64, 64, 64], 128, 2, 527)
    assert sp.input_features == "mag_phase" and config.projection_dim == 512
    with torch.device("meta"):
        model = create_model("paper")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # RoBERTa-base (124,645,632 parameters) less its pooler (768·768 + 768), unused by mean pooling.
    assert count(model.text_model) == 124_645_632 - 768 * 768 - 768
    assert model.fusion.linear1.in_features == 1024 + 256
    assert model.fusion.linear2.out_features == 512
    assert 60e6 < count(model.source_model) < 75e6  # HTS-AT-base
