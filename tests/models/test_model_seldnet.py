import pytest
import torch
from transformers import AutoModel, AutoModelForAudioFrameClassification

from conftest import make_stereo
from spatial_clap_hf import SeldNetConfig, SeldNetForSoundEventLocalization, SeldNetModel
from spatial_clap_hf.models.spatial_clap.modeling_seldnet import SeldConvBlock


@pytest.mark.parametrize("input_features", ["mag_phase", "mag_ipd"])
def test_seldnet_model_shapes(tiny_seldnet_config, input_features):
    tiny_seldnet_config.input_features = input_features
    model = SeldNetModel(tiny_seldnet_config).eval()
    out = model(make_stereo(3, 1.0))
    frames = 16000 // 512 + 1
    assert out.last_hidden_state.shape == (3, frames, 32)
    assert out.pooler_output.shape == (3, 32)
    assert torch.allclose(out.pooler_output, out.last_hidden_state.mean(dim=1), atol=1e-6)
    assert out.frame_mask.dtype == torch.long and out.frame_mask.all()


def test_channels_last_gives_same_features(tiny_seldnet_config):
    torch.manual_seed(0)
    model = SeldNetModel(tiny_seldnet_config).eval()
    x = make_stereo(2, 1.0, delays=[2, -3])
    with torch.no_grad():
        fast = model(x).last_hidden_state
        model.config.channels_last = False
        plain = model(x).last_hidden_state
    assert torch.allclose(fast, plain, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_conv_block_equals_conv_norm_relu_pool_in_that_order(training):
    """The block pools before the ReLU and folds an eval-mode BatchNorm into the conv; both are
    exact rewrites of conv → BatchNorm → ReLU → max-pool, in either mode (with trained BN stats)."""
    torch.manual_seed(0)
    block = SeldConvBlock(3, 8, frequency_pool=4, dropout=0.0)
    with torch.no_grad():
        block.norm.running_mean.uniform_(-1.0, 1.0)
        block.norm.running_var.uniform_(0.5, 2.0)
        block.norm.weight.uniform_(-1.5, 1.5)  # negative scales too: max and an affine map do not commute
        block.norm.bias.uniform_(-0.5, 0.5)
    block.train(training)
    x = torch.randn(2, 3, 5, 16)
    with torch.no_grad():
        expected = block.pool(block.activation(block.norm(block.conv(x))))
        got = block(x)
    assert got.shape == (2, 8, 5, 4)
    assert torch.allclose(got, expected, atol=1e-5)


def test_attention_mask_restricts_pooling(tiny_seldnet_config):
    model = SeldNetModel(tiny_seldnet_config).eval()
    x = make_stereo(2, 1.0)
    mask = torch.ones(2, 16000, dtype=torch.long)
    mask[1, 8000:] = 0
    out = model(x, attention_mask=mask)
    valid = out.frame_mask[1].bool()
    assert valid.sum() == 8000 // 512 + 1 and valid[: valid.sum()].all()
    expected = out.last_hidden_state[1, valid].mean(dim=0)
    assert torch.allclose(out.pooler_output[1], expected, atol=1e-6)
    assert torch.allclose(out.pooler_output[0], out.last_hidden_state[0].mean(dim=0), atol=1e-6)


def test_sed_doa_head_shapes_and_predict_angles(tiny_seldnet_config):
    torch.manual_seed(0)
    model = SeldNetForSoundEventLocalization(tiny_seldnet_config)
    x = make_stereo(2, 1.0, delays=[3, -3])
    out = model(x)
    assert out.sed_logits.shape == out.doa_deg.shape == (2, 32, 4)
    assert out.loss is None
    clip = model.predict(x, threshold=0.0)
    assert len(clip) == 2 and len(clip[0]) == 4
    assert {"class_id", "label", "probability", "azimuth_deg"} <= set(clip[0][0])
    angles = [e["azimuth_deg"] for events in clip for e in events]
    assert all(-90.0 <= a <= 90.0 for a in angles)
    frames = model.predict(x, threshold=0.0, frame_level=True)
    assert len(frames[0]) == 32 and all(-90 <= e["azimuth_deg"] <= 90 for e in frames[0][5])
    assert model.predict(x, threshold=1.0) == [[], []]
    assert model.training  # predict restores the mode


def test_predict_uses_id2label_names(tiny_seldnet_config):
    tiny_seldnet_config.id2label = {0: "dog", 1: "rain", 2: "speech", 3: "car"}
    model = SeldNetForSoundEventLocalization(tiny_seldnet_config)
    events = model.predict(make_stereo(1, 0.5), threshold=0.0)[0]
    assert {e["label"] for e in events} == {"dog", "rain", "speech", "car"}


def test_masked_doa_loss_ignores_inactive_classes(tiny_seldnet_config):
    torch.manual_seed(0)
    model = SeldNetForSoundEventLocalization(tiny_seldnet_config).eval()
    x = make_stereo(2, 1.0, delays=[3, -3])
    sed = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    doa = torch.tensor([[40.0, 10.0, -20.0, -60.0], [0.0, 70.0, 30.0, 5.0]])
    with torch.no_grad():
        base = model(x, sed_labels=sed, doa_labels=doa)
        changed_inactive = doa.clone()
        changed_inactive[sed == 0] = torch.tensor([-90.0, 90.0, 33.0, float("nan"), 12.0])
        same = model(x, sed_labels=sed, doa_labels=changed_inactive)
        changed_active = doa.clone()
        changed_active[0, 0] = -80.0
        different = model(x, sed_labels=sed, doa_labels=changed_active)
    assert torch.equal(base.doa_loss, same.doa_loss) and torch.equal(base.loss, same.loss)
    assert not torch.isclose(base.doa_loss, different.doa_loss)


def test_clip_level_labels_broadcast_over_frames(tiny_seldnet_config):
    model = SeldNetForSoundEventLocalization(tiny_seldnet_config).eval()
    x = make_stereo(2, 1.0)
    sed = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    doa = torch.full((2, 4), 30.0)
    with torch.no_grad():
        clip = model(x, sed_labels=sed, doa_labels=doa)
        frame = model(x, sed_labels=sed[:, None].expand(2, 32, 4), doa_labels=doa[:, None].expand(2, 32, 4))
    assert torch.allclose(clip.loss, frame.loss)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"doa_labels": torch.zeros(2, 4)}, "needs sed_labels"),
        ({"sed_labels": torch.zeros(2, 5)}, "sed_labels must be"),
        ({"sed_labels": torch.zeros(2, 4), "doa_labels": torch.zeros(2, 7, 4)}, "doa_labels must be"),
    ],
)
def test_bad_labels_raise(tiny_seldnet_config, kwargs, match):
    model = SeldNetForSoundEventLocalization(tiny_seldnet_config)
    with pytest.raises(ValueError, match=match):
        model(make_stereo(2, 1.0), **kwargs)


def test_wrong_channel_count_raises(tiny_seldnet_config):
    with pytest.raises(ValueError, match="2 channels"):
        SeldNetModel(tiny_seldnet_config)(torch.randn(1, 1, 16000))


def _train(model, steps, batch_kwargs):
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = model(**batch_kwargs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_seld_loss_falls(tiny_seldnet_config):
    torch.manual_seed(0)
    model = SeldNetForSoundEventLocalization(tiny_seldnet_config).train()
    delays = [5, -5, 0, 3]
    batch = {
        "input_values": make_stereo(4, 0.5, delays=delays, seed=1),
        "sed_labels": torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [1.0, 0, 0, 1.0]]),
        "doa_labels": torch.tensor([[60.0, 0, 0, 0], [0, -60.0, 0, 0], [0, 0, 0.0, 0], [35.0, 0, 0, 35.0]]),
    }
    losses = _train(model, 20, batch)
    assert losses[-1] < 0.75 * losses[0], losses


def test_single_doa_mode_loss_falls_and_predicts_clip_angles(tiny_seldnet_config):
    tiny_seldnet_config.doa_mode = "single"
    tiny_seldnet_config.num_classes = 0
    torch.manual_seed(0)
    model = SeldNetForSoundEventLocalization(tiny_seldnet_config).train()
    assert model.sed_head is None
    batch = {"input_values": make_stereo(4, 0.5, delays=[5, -5, 0, 3], seed=2), "doa_labels": torch.tensor([60.0, -60.0, 0.0, 35.0])}
    assert model(**batch).doa_deg.shape == (4,)
    losses = _train(model, 20, batch)
    assert losses[-1] < 0.5 * losses[0], losses
    predicted = model.predict(batch["input_values"])
    assert [len(p) for p in predicted] == [1, 1, 1, 1] and predicted[0][0]["class_id"] is None
    assert all(-90 <= p[0]["azimuth_deg"] <= 90 for p in predicted)
    with pytest.raises(ValueError, match="doa_labels for doa_mode='single'"):
        model(batch["input_values"], doa_labels=torch.zeros(4, 2))


def test_encoder_loads_from_sed_checkpoint_and_auto_classes(tiny_seldnet_config, tmp_path):
    torch.manual_seed(0)
    full = SeldNetForSoundEventLocalization(tiny_seldnet_config).eval()
    full.save_pretrained(tmp_path)
    encoder = SeldNetModel.from_pretrained(tmp_path).eval()
    for name, tensor in full.seldnet.state_dict().items():
        assert torch.equal(tensor, encoder.state_dict()[name]), name
    assert isinstance(AutoModel.from_pretrained(tmp_path), SeldNetModel)
    reloaded = AutoModelForAudioFrameClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, SeldNetForSoundEventLocalization)
    x = make_stereo(1, 0.5)
    with torch.no_grad():
        assert torch.equal(full(x).doa_deg, reloaded(x).doa_deg)
        assert torch.equal(full(x).pooler_output, encoder(x).pooler_output)


def test_config_without_classes_for_per_class_mode_is_rejected():
    with pytest.raises(ValueError, match="per_class"):
        SeldNetConfig(num_classes=0)


def test_balanced_sed_pos_weight_scales_only_active_terms(tiny_seldnet_config):
    """'balanced' multiplies the positive BCE terms by num_classes - 1 and leaves the others."""
    torch.manual_seed(0)
    plain = SeldNetForSoundEventLocalization(tiny_seldnet_config).eval()
    config = SeldNetConfig(**{**tiny_seldnet_config.to_dict(), "sed_pos_weight": "balanced"})
    balanced = SeldNetForSoundEventLocalization(config).eval()
    balanced.load_state_dict(plain.state_dict())
    x = make_stereo(2, 1.0)
    sed = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    with torch.no_grad():
        logits = plain(x).sed_logits
        targets = sed[:, None].expand_as(logits)
        positive = -torch.nn.functional.logsigmoid(logits) * targets
        negative = -torch.nn.functional.logsigmoid(-logits) * (1 - targets)
        k = tiny_seldnet_config.num_classes
        expected = ((k - 1) * positive + negative).mean()
        assert torch.allclose(balanced(x, sed_labels=sed).sed_loss, expected, atol=1e-6)
        assert torch.allclose(plain(x, sed_labels=sed).sed_loss, (positive + negative).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="sed_pos_weight"):
        SeldNetConfig(sed_pos_weight="auto")


def test_direction_bins_interpolate_between_neighbouring_centres():
    from spatial_clap_hf.models.spatial_clap.modeling_seldnet import direction_bins

    # 7 bins: centres every 30° from -90° to 90°
    bins = direction_bins(torch.tensor([-90.0, 0.0, 45.0, 80.0, 120.0]), 7)
    assert bins.shape == (5, 7)
    torch.testing.assert_close(bins.sum(-1), torch.ones(5))
    assert bins[0, 0] == 1 and bins[1, 3] == 1
    torch.testing.assert_close(bins[2, 4:6], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(bins[3, 5:7], torch.tensor([1 / 3, 2 / 3]))
    assert bins[4, 6] == 1  # beyond the folded range: clamped to 90°
    with pytest.raises(ValueError, match="num_bins >= 2"):
        direction_bins(torch.zeros(1), 1)


def _stage1_on_two_clips(config: SeldNetConfig, doa_mode: str):
    """A random stage-1 model of ``doa_mode`` and, for two 1 s stereo clips (the second padded
    after 6000 samples), its outputs and its encoder's outputs."""
    torch.manual_seed(0)
    config.doa_mode = doa_mode
    stage1 = SeldNetForSoundEventLocalization(config).eval()
    x = make_stereo(2, 1.0, delays=[3, -3])
    mask = torch.ones(2, 16000, dtype=torch.long)
    mask[1, 6000:] = 0
    with torch.no_grad():
        return stage1, stage1(x, attention_mask=mask), stage1.seldnet(x, attention_mask=mask)


@pytest.mark.parametrize("doa_mode", ["per_class", "single"])
def test_readout_is_the_heads_predictions_as_a_class_direction_map(tiny_seldnet_config, doa_mode):
    from spatial_clap_hf.models.spatial_clap.modeling_seldnet import SeldReadout, direction_bins

    stage1, out, encoded = _stage1_on_two_clips(tiny_seldnet_config, doa_mode)
    readout = SeldReadout(tiny_seldnet_config, num_bins=5)
    readout.load_heads(stage1)
    with torch.no_grad():
        got = readout.class_direction_map(encoded)
        features = readout(encoded)
    assert got.shape == features.shape == (2, tiny_seldnet_config.readout_size(5))
    # What the fusion reads is the map standardised per clip.
    torch.testing.assert_close(features, torch.nn.functional.layer_norm(got, got.shape[-1:]))
    if doa_mode == "single":
        torch.testing.assert_close(got, direction_bins(out.doa_deg, 5))
        return
    cells = torch.sigmoid(out.sed_logits)[..., None] * direction_bins(out.doa_deg, 5)  # (B, T, K, bins)
    for b in range(2):
        valid = out.frame_mask[b].bool()
        torch.testing.assert_close(got[b], cells[b, valid].mean(0).flatten(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got[0], got[1])
    other = SeldNetConfig(**{**tiny_seldnet_config.to_dict(), "doa_mode": "single"})
    with pytest.raises(ValueError, match="doa_mode"):
        readout.load_heads(SeldNetForSoundEventLocalization(other))


@pytest.mark.parametrize("doa_mode", ["per_class", "single"])
def test_readout_mean_doa_is_the_activity_weighted_mean_azimuth_and_its_square(tiny_seldnet_config, doa_mode):
    from spatial_clap_hf.models.spatial_clap.modeling_seldnet import DOA_SCALE_DEG, SeldReadout

    stage1, out, encoded = _stage1_on_two_clips(tiny_seldnet_config, doa_mode)
    plain, with_doa = SeldReadout(tiny_seldnet_config, 5), SeldReadout(tiny_seldnet_config, 5, mean_doa=True)
    plain.load_heads(stage1)
    with_doa.load_heads(stage1)
    with torch.no_grad():
        features, map_only = with_doa(encoded), plain(encoded)
    groups = tiny_seldnet_config.num_classes if doa_mode == "per_class" else 1
    assert features.shape == (2, tiny_seldnet_config.readout_size(5, mean_doa=True)) == (2, groups * 7)
    torch.testing.assert_close(features[:, : groups * 5], map_only)
    mean, square = features[:, groups * 5 : groups * 6], features[:, groups * 6 :]
    torch.testing.assert_close(square, mean**2)
    if doa_mode == "single":
        torch.testing.assert_close(DOA_SCALE_DEG * mean[:, 0], out.doa_deg)
        return
    probs = torch.sigmoid(out.sed_logits)
    for b in range(2):  # padded frames of clip 1 are left out
        valid = out.frame_mask[b].bool()
        expected = (probs[b, valid] * out.doa_deg[b, valid]).sum(0) / probs[b, valid].sum(0) / DOA_SCALE_DEG
        torch.testing.assert_close(mean[b], expected, rtol=1e-5, atol=1e-6)
