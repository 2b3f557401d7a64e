"""The normalisation a tokenizer was trained with travels with it (labcore.data.normalization_for):
a course-layout folder (no stats.json, the course's constants) inpainted with the bundled emoji64
models keeps its known pixels; with the folder's own constants it came back washed-out grey."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from labcore.__main__ import main
from labcore.data import COURSE_TEST, InpaintingTestSet, load_normalization, normalization_for
from labcore.dataset_files import read_mask
from labcore.paths import BUNDLED_VQGAN_CONFIG, EMOJI64_DIR
from labcore.model_files import load_bundled_vqgan, load_config_normalization
from test_data import make_course_layout

N_IMAGES = 8


def known_region_error(results, test_set) -> float:
    """Mean |output - ground truth| over the known pixels (mask white), in 1/255 units."""
    errors = []
    for i, name in enumerate(p.name for p in test_set.image_files):
        out = np.asarray(Image.open(results / name).convert("RGB"), dtype=np.float64)        # (64,64,3)
        truth = test_set.normalization.denormalize(test_set.target(i)).permute(1, 2, 0).numpy() * 255
        known = read_mask(test_set.mask_files[i])[0].bool().numpy()                           # (64,64)
        errors.append(np.abs(out - truth)[known].mean())
    return float(np.mean(errors))


def test_the_bundled_tokenizer_carries_its_normalisation():
    recorded = load_config_normalization(BUNDLED_VQGAN_CONFIG)
    assert recorded is not None and load_bundled_vqgan().normalization == recorded
    # emoji64's own statistics are the train split's for every split: the same numbers
    assert load_normalization("test", EMOJI64_DIR) == recorded == normalization_for(recorded, EMOJI64_DIR)


def test_a_course_folder_is_normalised_like_the_tokenizer_with_one_note(tmp_path, caplog):
    root = make_course_layout(tmp_path, n=2)
    recorded = load_config_normalization(BUNDLED_VQGAN_CONFIG)
    assert load_normalization("test", root) == COURSE_TEST                  # what the folder says
    assert normalization_for(recorded, root) == recorded                     # what the tokenizer needs
    assert normalization_for(recorded, root) == recorded
    notes = [r.getMessage() for r in caplog.records if r.name == "labcore"]  # runtime.note's logger
    assert len(notes) == 1 and notes[0].startswith(f"{root}: images normalised with the tokenizer's"), notes
    assert normalization_for(None, root) == COURSE_TEST                      # a course tokenizer: the course's


def test_course_layout_inpainted_with_the_bundled_models_keeps_its_known_pixels(tmp_path, capsys):
    root = make_course_layout(tmp_path, n=N_IMAGES)
    out = tmp_path / "out"
    assert main(["inpaint", "--data-root", str(root), "-o", str(out), "--total-iter", "2", "--no-steps",
                 "--device", "cpu", "--batch-size", str(N_IMAGES)]) == 0
    assert "note:" in capsys.readouterr().err                              # folder vs tokenizer statistics
    error = known_region_error(out / "test_results", InpaintingTestSet(root))
    print(f"known-region mean |error| on a course-layout folder: {error:.2f}/255")
    assert error <= 20, error                                               # 73/255 with the course's constants
    # the same images decoded through the folder's own constants: the washed-out failure this guards
    with torch.no_grad():
        vqgan, test = load_bundled_vqgan(), InpaintingTestSet(root)          # COURSE_TEST normalisation
        truth = torch.stack([test.target(i) for i in range(N_IMAGES)])      # (N,3,64,64)
        wrong = test.normalization.denormalize(vqgan.decode_indices(vqgan.encode_to_indices(truth)))
    masks = torch.stack([read_mask(f) for f in test.mask_files]).bool().expand(-1, 3, -1, -1)
    wrong_error = float((wrong - test.normalization.denormalize(truth)).abs()[masks].mean() * 255)
    assert wrong_error > 2 * error, (wrong_error, error)
