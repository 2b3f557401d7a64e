"""Bad input never yields a wrong answer or a traceback: every case below ends with exit status 2,
one ``labcore <command>: error: ...`` line that names the file or the parameter, and nothing
written (a half-written output folder would be scored by the next command)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from labcore.__main__ import main
from labcore.paths import EMOJI64_DIR


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def leftovers(folder) -> list[str]:
    """Everything in ``folder`` but the inputs a test put there on purpose."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("input"))


# --------------------------------------------------------------------------- labcore inpaint

CASES = {  # id: (command, flags, a fragment of the message)
    "inpaint temperature inf": ("inpaint", ["--temperature", "inf"], "choice_temperature"),
    "inpaint temperature nan": ("inpaint", ["--temperature", "nan"], "choice_temperature"),
    "inpaint sample temperature nan": ("inpaint", ["--sample-temperature", "nan"], "sample_temperature"),
    "inpaint sample temperature < 0": ("inpaint", ["--sample-temperature", "-1"], "sample_temperature"),
    "inpaint T beyond the tokens": ("inpaint", ["--total-iter", "1000"], "total_iter"),
    "inpaint T = 0": ("inpaint", ["--total-iter", "0"], "total_iter"),
    "inpaint sweet spot > T": ("inpaint", ["--total-iter", "4", "--sweet-spot", "5"], "sweet_spot"),
    "inpaint limit 0": ("inpaint", ["--limit", "0"], "--limit"),
    "inpaint limit -1": ("inpaint", ["--limit", "-1"], "--limit"),
    "inpaint batch size 0": ("inpaint", ["--batch-size", "0"], "--batch-size"),
    "inpaint unknown device": ("inpaint", ["--device", "foo"], "device 'foo'"),
    "inpaint unknown schedule": ("inpaint", ["--schedule", "zigzag"], "--schedule"),
    "train-vqgan steps 0": ("train-vqgan", ["--steps", "0"], "steps"),
    "train-vqgan batch size 0": ("train-vqgan", ["--batch-size", "0"], "batch_size"),
    "train-vqgan limit 0": ("train-vqgan", ["--limit", "0"], "limit"),
    "train-vqgan unknown device": ("train-vqgan", ["--device", "foo"], "device 'foo'"),
    "train-vqgan unknown precision": ("train-vqgan", ["--precision", "fp8"], "precision must be one of"),
    "train-vqgan unknown preset": ("train-vqgan", ["--preset", "huge"], "unknown preset 'huge'"),
    "train-vqgan threads 0": ("train-vqgan", ["--threads", "0"], "threads must be an integer >= 1"),
    "train-vqgan stop-after 0": ("train-vqgan", ["--stop-after", "0"], "stop_after must be an integer >= 1"),
    "train batch size 0": ("train", ["--batch-size", "0"], "batch_size must be an integer >= 1"),
    "train unknown precision": ("train", ["--precision", "fp8"], "precision must be one of"),
    "train lr nan": ("train", ["--lr", "nan"], "lr must be a finite number"),
    "train unknown attention": ("train", ["--attention", "sparse"], "attention must be one of"),
    "train threads 0": ("train", ["--threads", "0"], "threads must be an integer >= 1"),
}


@pytest.mark.parametrize("command, flags, fragment", CASES.values(), ids=CASES.keys())
def test_bad_settings_fail_before_any_work(command, flags, fragment, tiny_files, tmp_path, capsys):
    out = str(tmp_path / "out")
    common = ["--limit", "2", "-o", out, *tiny_files] if command == "inpaint" else ["--run-dir", out, "--no-progress"]
    code, err = run_cli([command, *common, *flags], capsys)
    assert code == 2 and err.startswith(f"labcore {command}: error:") and fragment in err, err
    assert leftovers(tmp_path) == []                       # no output folder, no run folder, no "-> best.pt"


def test_inpaint_output_path_that_is_a_file(tiny_files, tmp_path, capsys):
    target = tmp_path / "input_results.txt"
    target.write_text("keep me")
    code, err = run_cli(["inpaint", "--limit", "2", "-o", str(target), *tiny_files], capsys)
    assert code == 2 and "not a folder" in err and str(target) in err, err
    assert target.read_text() == "keep me" and leftovers(tmp_path) == []


def test_inpaint_refuses_a_used_folder_and_replaces_it_whole_with_overwrite(tiny_files, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["inpaint", "--no-steps", "--total-iter", "2", "-o", str(out), *tiny_files]
    assert main(common + ["--limit", "4"]) == 0
    assert len(list((out / "test_results").iterdir())) == 4
    code, err = run_cli(common + ["--limit", "3"], capsys)                 # a rerun into the used folder
    assert code == 2 and "--overwrite" in err and str(out) in err, err
    assert len(list((out / "test_results").iterdir())) == 4                # untouched
    assert main(common + ["--limit", "3", "--overwrite"]) == 0
    assert len(list((out / "test_results").iterdir())) == 3                # 3 new, no stale 4th
    assert leftovers(tmp_path) == ["out"]                                  # no temporary folders


def test_inpaint_failing_midway_leaves_nothing(tiny_files, tmp_path, capsys):
    data = tmp_path / "input_data"
    shutil.copytree(EMOJI64_DIR / "mask64", data / "mask64")
    masked = data / "emoji" / "masked_image"
    shutil.copytree(EMOJI64_DIR / "emoji" / "masked_image", masked)
    for p in sorted(masked.iterdir())[16:]:                                 # 16 images, 16 masks
        p.unlink()
    for p in sorted((data / "mask64").iterdir())[16:]:
        p.unlink()
    broken = sorted(masked.iterdir())[12]
    broken.write_bytes(broken.read_bytes()[:200])                           # truncated PNG at image 12
    code, err = run_cli(["inpaint", "--data-root", str(data), "--batch-size", "4", "--total-iter", "2",
                         "-o", str(tmp_path / "out"), *tiny_files], capsys)
    assert code == 2 and broken.name in err, err
    assert leftovers(tmp_path) == []                                       # not 12 files of earlier batches


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_inpaint_read_only_parent_fails_before_compute(tiny_files, tmp_path, capsys):
    parent = tmp_path / "input_readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, err = run_cli(["inpaint", "--limit", "2", "-o", str(parent / "out"), *tiny_files], capsys)
    finally:
        parent.chmod(0o755)
    assert code == 2 and "permission denied" in err and str(parent) in err, err


# --------------------------------------------------------------------------- training commands

def test_invalid_yaml_names_the_file(tmp_path, capsys):
    bad = tmp_path / "input_bad.yml"
    bad.write_text("train: {epochs: 3\n  lr: [\n")
    for command in (["train", "--run-dir", str(tmp_path / "run")], ["train-vqgan", "--run-dir", str(tmp_path / "run")]):
        code, err = run_cli([*command, "--config", str(bad), "--no-progress", "--device", "cpu"], capsys)
        assert code == 2 and err.startswith(f"labcore {command[0]}: error:") and "input_bad.yml" in err, err
    assert leftovers(tmp_path) == []


def test_train_vqgan_existing_run_needs_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train-vqgan", "--run-dir", str(run), "--steps", "1", "--limit", "8", "--val-limit", "4",
            "--batch-size", "4", "--eval-every", "1", "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, err = run_cli(argv, capsys)
    assert code == 2 and "--resume" in err and str(run) in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("command", ["train", "eval-transformer", "eval-vqgan"])
def test_unknown_device_everywhere(command, tmp_path, capsys):
    code, err = run_cli([command, "--device", "foo"], capsys)
    assert code == 2 and "device 'foo': not a device name" in err, err


# --------------------------------------------------------------------------- --step: a student's step

WRONG_STEP = '''import torch
from labcore.decoding import StepResult


def decode_step(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    tokens = tokens.masked_fill(masked, mask_token_id)
    logits = transformer(tokens)[..., :mask_token_id].float()
    predicted = logits.argmax(-1)
    log_p = logits.log_softmax(-1).gather(-1, predicted[..., None])[..., 0]
    confidence = (-log_p).masked_fill(~masked, float("inf"))   # sorted by the loss -log p: the classic mistake
    filled = torch.where(masked, predicted, tokens)
    remaining = masked.sum(1)
    n = torch.floor(settings.gamma_fn(ratio) * m0.double()).long()
    n = torch.clamp(torch.minimum(n, remaining - 1), min=1)
    n = torch.where((remaining > 0) & (ratio < 1), n, torch.zeros_like(n))
    new_masked = confidence.argsort(dim=1, stable=True).argsort(dim=1) < n[:, None]
    return StepResult(filled.masked_fill(new_masked, mask_token_id), new_masked, filled)
'''
CALLS_LABCORES = '''from labcore.decoding import decode_step as reference


def decode_step(*args, **kwargs):
    return reference(*args, **kwargs)
'''
RAISES = WRONG_STEP.replace("    remaining = masked.sum(1)\n", "    remaining = masked.sum(1) + 1 / 0\n")
STUB_NOTEBOOK = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                            "source": ["def decode_step(transformer, tokens, masked, m0, ratio, settings,\n",
                                       "                mask_token_id, generator=None):\n",
                                       "    # YOUR CODE HERE\n", "    raise NotImplementedError()\n"]}],
                 "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def one_error_line(argv, capsys) -> tuple[int, str]:
    """The exit status and THE line on stderr (a test fails if there are more)."""
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return code, lines[0]


@pytest.mark.parametrize("command", ["inpaint", "experiment"])
@pytest.mark.parametrize("file, text, fragment", [
    ("input_wrong.py", WRONG_STEP, "fails its check: decode.keeps_least_confident"),
    ("input_calls_labcore.py", CALLS_LABCORES, "fails its check: decode.uses_reference; "),
    ("input_raises.py", RAISES, "fails its check: decode.error; ZeroDivisionError: division by zero"),
    ("input_stub.ipynb", json.dumps(STUB_NOTEBOOK), "fails its check: not done yet"),
], ids=["keeps least confident", "calls labcore's step", "raises", "notebook stub"])
def test_a_step_that_fails_its_check_is_refused_before_any_work(command, file, text, fragment, tiny_files, tmp_path,
                                                                 capsys):
    from labcore.checkers import MISTAKES

    (tmp_path / file).write_text(text)
    spec = f"{tmp_path / file}:decode_step"
    code, err = one_error_line([command, "--step", spec, "--limit", "2", "--device", "cpu", "--no-progress",
                                "-o", str(tmp_path / "out"), *tiny_files], capsys)
    assert code == 2 and err.startswith(f"labcore {command}: error: --step {spec} {fragment}"), err
    assert "notebook 03" in err
    if "decode." in fragment and "decode.error" not in fragment:                 # the first mistake's fix
        assert MISTAKES[fragment.split(": ")[1].split(";")[0]].fix in err
    assert leftovers(tmp_path) == []                                       # no output folder


@pytest.mark.parametrize("spec, fragment", [
    ("{tmp}/input_missing.py:decode_step", "no such file"),
    ("{tmp}/input_step.py:decode_stp", "has no decode_stp"),
    ("{tmp}/input_syntax.py:decode_step", "SyntaxError"),
    ("{tmp}/input_step.py", "expected FILE.py:NAME"),
], ids=["missing file", "missing function", "syntax error", "no function named"])
def test_a_step_that_cannot_be_loaded_is_one_error_line(spec, fragment, tiny_files, tmp_path, capsys):
    (tmp_path / "input_step.py").write_text(CALLS_LABCORES)
    (tmp_path / "input_syntax.py").write_text("def decode_step(:\n")
    spec = spec.format(tmp=tmp_path)
    code, err = one_error_line(["inpaint", "--step", spec, "--limit", "2", "-o", str(tmp_path / "out"),
                                *tiny_files], capsys)
    assert code == 2 and err.startswith(f"labcore inpaint: error: --step {spec}: ") and fragment in err, err
    assert leftovers(tmp_path) == []


def test_experiment_step_and_variants_do_not_mix(tmp_path, capsys):
    code, err = one_error_line(["experiment", "--variants", "--step", "mine.py:decode_step", "-o", str(tmp_path)],
                               capsys)
    assert code == 2 and "--variants measures labcore's classic mistakes" in err and "mine.py:decode_step" in err
    assert leftovers(tmp_path) == []
