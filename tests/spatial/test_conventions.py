import numpy as np
import pytest

from spatial_clap_hf.spatial import (
    DEFAULT_PHRASES,
    PhraseSet,
    compose_caption,
    doa_class,
    doa_class_center_deg,
    fold_azimuth,
    neutral_prompts,
)


@pytest.mark.parametrize(
    "azimuth, folded",
    [(0, 0), (90, 90), (-90, -90), (180, 0), (135, 45), (-135, -45), (270, -90), (30, 30), (150, 30)],
)
def test_fold_azimuth_mirrors_front_and_back(azimuth, folded):
    assert fold_azimuth(azimuth) == pytest.approx(folded, abs=1e-9)


def test_fold_azimuth_vectorised():
    out = fold_azimuth(np.array([0.0, 120.0, -100.0]))
    np.testing.assert_allclose(out, [0.0, 60.0, -80.0], atol=1e-9)


@pytest.mark.parametrize(
    "azimuth, cls",
    [(90, 0), (60, 0), (54.5, 0), (53, 1), (20, 1), (0, 2), (17, 2), (-17, 2), (-20, 3), (-60, 4), (-90, 4), (180, 2), (120, 0)],
)
def test_doa_class_sectors_left_to_right(azimuth, cls):
    assert doa_class(azimuth) == cls


def test_class_centres_fall_in_their_class():
    for k in range(len(DEFAULT_PHRASES)):
        assert doa_class(doa_class_center_deg(k)) == k
    with pytest.raises(ValueError):
        doa_class_center_deg(5)


def test_compose_caption_single_and_multi_source():
    assert compose_caption(["A dog is barking"], [-80.0]) == "A dog is barking on the right side."
    assert compose_caption(["a dog is barking."]) == "A dog is barking."
    two = compose_caption(["A dog barks.", "a man speaks"], [85.0, 0.0])
    assert two == "A dog barks on the left side. A man speaks in front."


def test_compose_caption_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        compose_caption(["  "], [0.0])
    with pytest.raises(ValueError, match="one azimuth per source"):
        compose_caption(["A dog barks", "A cat"], [0.0])


def test_custom_phrase_set_changes_classes_and_prompts():
    three = PhraseSet(phrases=("links", "vorne", "rechts"), prompt_template="Ein Geräusch {phrase}.")
    assert doa_class(80, three) == 0 and doa_class(0, three) == 1 and doa_class(-80, three) == 2
    assert neutral_prompts(three) == ["Ein Geräusch links.", "Ein Geräusch vorne.", "Ein Geräusch rechts."]
    assert neutral_prompts()[0] == "A sound is heard on the left side."
    with pytest.raises(ValueError):
        PhraseSet(phrases=("only",))
