"""Cached-feature accumulation: k micro-batches give the gradients of one step on their concatenation."""

import pytest
import torch

from spatial_clap_hf import create_model
from spatial_clap_hf.training import ContrastiveLoss
from spatial_clap_hf.training.accumulation import cached_contrastive_backward

SAMPLES, TOKENS = 8000, 10


def _micro_batches(sizes, seed=1):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for n in sizes:
        ids = torch.randint(5, 500, (n, TOKENS), generator=g)
        mask = torch.ones_like(ids)
        mask[0, -3:] = 0
        batches.append(
            {"input_values": 0.1 * torch.randn(n, 2, SAMPLES, generator=g), "input_ids": ids, "attention_mask": mask}
        )
    return batches


def _grads(model):
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _fresh(preset="tiny"):
    torch.manual_seed(0)
    return create_model(preset)


@pytest.mark.parametrize("preset", ["tiny", "tiny-mono"])
def test_two_micro_batches_give_the_gradients_of_one_step_on_their_concatenation(preset):
    micro = _micro_batches([3, 3])
    loss_fn = ContrastiveLoss()

    reference = _fresh(preset).eval()  # BatchNorm on running statistics, no dropout: per-sample towers
    joined = {key: torch.cat([m[key] for m in micro]) for key in micro[0]}
    out = reference(**joined)
    ref_loss = loss_fn(out.audio_embeds, out.text_embeds, reference.logit_scale)
    ref_loss.backward()

    model = _fresh(preset).eval()
    loss = cached_contrastive_backward(model, micro, loss_fn, model.logit_scale)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    expected, got = _grads(reference), _grads(model)
    assert expected.keys() == got.keys() and len(got) > 20
    assert max(g.abs().max().item() for g in expected.values()) > 1e-3  # the comparison means something
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5, msg=key)  # float32 round-off
    # the loss over 6 pairs is not the mean of two losses over 3 pairs: the negatives span both halves
    with torch.no_grad():
        halves = [loss_fn(o.audio_embeds, o.text_embeds, reference.logit_scale) for o in (reference(**m) for m in micro)]
    assert abs(sum(h.item() for h in halves) / 2 - ref_loss.item()) > 1e-3


def test_dropout_masks_are_replayed_so_one_micro_batch_equals_a_plain_step():
    """In train mode (dropout on), the re-embedded micro-batch draws the masks of its first pass."""
    micro = _micro_batches([4])
    loss_fn = ContrastiveLoss()

    reference = _fresh("tiny-mono").train()
    torch.manual_seed(7)
    out = reference(**micro[0])
    ref_loss = loss_fn(out.audio_embeds, out.text_embeds, reference.logit_scale)
    ref_loss.backward()

    model = _fresh("tiny-mono").train()
    torch.manual_seed(7)
    loss = cached_contrastive_backward(model, micro, loss_fn, model.logit_scale)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    expected = _grads(reference)
    for key, value in _grads(model).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-6, msg=key)


def test_no_micro_batch_is_an_error():
    model = _fresh("tiny-mono")
    with pytest.raises(ValueError, match="at least one micro-batch"):
        cached_contrastive_backward(model, [], ContrastiveLoss(), model.logit_scale)
