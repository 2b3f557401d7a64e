"""Exercises 3-5 as notebook 02 runs them: labcore's reference adapters (what the notebook uses
until a student's piece passes) are right by their checkers' probes (and, given as a student's
answer, are ``<exercise>.uses_reference``) and agree with labcore's own training code;
the notebook's solved exercise cells pass their checkers; its released stubs (the solution
regions replaced by ``raise NotImplementedError()``, as nbgrader does) are reported "not done"
and replaced by the references, which still train."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import labcore.checkers.report as report
import labcore.checkers.training as training
from labcore.checkers import (check_configure_optimizers, check_gamma, check_mask_tokens, check_masked_loss,
                              check_masking, check_train_one_epoch, check_training_loop, yours_or_reference)
from labcore.checkers.fixtures import tiny_transformer
from labcore.checkers.masking import reference_mask_tokens, reference_masked_loss
from labcore.checkers.training import reference_configure_optimizers, reference_train_one_epoch
from labcore.maskgit import mvtm_loss
from labcore.schedules import gamma
from labcore.transformer import BidirectionalTransformer

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_train_stage2.ipynb"
EXERCISES = ("gamma_func", "mask_tokens", "masked_loss", "configure_optimizers", "train_one_epoch")
CHECKS = {"check_gamma_func": 2, "check_mask_tokens": 2, "check_masked_loss": 1, "check_configure_optimizers": 1,
          "check_train_one_epoch": 2}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny tensors: one torch thread (conftest's ``one_thread``) for the whole module."""


# ----------------------------------------------------------------------------- the references

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_references_pass_their_checkers(seed, monkeypatch):
    """The references of exercise 5 are right by every probe (the ownership rule, which fails them
    as a student's answer, switched off here: the static walk, and the tripwire on the model's
    param_groups)."""
    monkeypatch.setattr(report, "reaches", lambda obj, exercise: [])
    monkeypatch.setattr(training, "WatchedTransformer", BidirectionalTransformer)
    result = check_training_loop(reference_configure_optimizers, reference_train_one_epoch, seed=seed)
    assert result.passed and result.mistakes == [] and not result.notes, str(result)


def test_references_given_as_answers_are_not_the_student_s():
    result = check_training_loop(reference_configure_optimizers, reference_train_one_epoch)
    assert result.mistakes == ["loop.uses_reference"] and len(result.findings) == 2, str(result)


def test_reference_mask_is_the_one_mvtm_loss_draws():
    tokens = torch.randint(0, 16, (6, 64))
    before = tokens.clone()
    inputs, masked = reference_mask_tokens(tokens, 16, gamma("cosine"), generator=torch.Generator().manual_seed(3))
    assert torch.equal(tokens, before), "the caller's tokens changed"
    assert inputs.dtype == torch.long and masked.dtype == torch.bool and inputs.shape == masked.shape == (6, 64)
    assert torch.equal(inputs, tokens.masked_fill(masked, 16))
    seen = []
    mvtm_loss(lambda x: seen.append(x) or torch.zeros(6, 64, 17), tokens, 16, "cosine",
              generator=torch.Generator().manual_seed(3))
    assert torch.equal(seen[0], inputs)
    # the same ratio rule: ceil(gamma(r) N) with r drawn first from the generator, at least 1
    r = torch.rand(6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    want = torch.ceil(gamma("cosine")(r) * 64).long().clamp(1, 64)
    assert masked.sum(1).tolist() == want.tolist()


def test_reference_masked_loss_is_mvtm_loss():
    torch.manual_seed(0)
    logits = torch.randn(4, 32, 9) * 2
    tokens = torch.randint(0, 8, (4, 32))
    stub = lambda x: logits  # noqa: E731 - the transformer stand-in
    out = mvtm_loss(stub, tokens, 8, "linear", generator=torch.Generator().manual_seed(1))
    _, masked = reference_mask_tokens(tokens, 8, gamma("linear"), generator=torch.Generator().manual_seed(1))
    leaf = logits.clone().requires_grad_(True)
    loss = reference_masked_loss(leaf, tokens, masked)
    assert loss.shape == () and loss.requires_grad
    assert loss.item() == pytest.approx(out["loss"].item(), abs=1e-6)
    loss.backward()
    assert leaf.grad[~masked].abs().max() == 0 and leaf.grad[masked].abs().max() > 0


def test_reference_optimizer_is_labcore_s():
    model = tiny_transformer(8, 16)
    opt = reference_configure_optimizers(model, 1e-3, 0.1, betas=(0.8, 0.9))
    assert type(opt) is torch.optim.AdamW
    ref = model.param_groups(0.1)
    assert [[id(p) for p in g["params"]] for g in opt.param_groups] == [[id(p) for p in g["params"]] for g in ref]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(g["lr"] == 1e-3 and tuple(g["betas"]) == (0.8, 0.9) for g in opt.param_groups)
    assert tuple(reference_configure_optimizers(model, 1e-3, 0.1).param_groups[0]["betas"]) == (0.9, 0.96)


def test_reference_epoch_trains():
    """Several epochs on maps that each repeat one id (a masked token is any known one): the mean
    loss falls from about ln(K + 1)."""
    torch.manual_seed(0)
    model = tiny_transformer(8, 16).eval()
    batches = [torch.randint(0, 8, (8, 1)).expand(8, 16).contiguous() for _ in range(4)]
    opt = reference_configure_optimizers(model, 1e-2, 0.05)
    first = reference_train_one_epoch(model, batches, opt, 8, gamma("cosine"))
    assert isinstance(first, float) and model.training
    assert abs(first - math.log(9)) < 0.3
    for _ in range(15):
        last = reference_train_one_epoch(model, batches, opt, 8, gamma("cosine"))
    assert last < first - 0.3, (first, last)


# ----------------------------------------------------------------------------- notebook 02's cells

def _cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


def _grading(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _exercise_sources(stub: bool) -> dict[str, str]:
    """grade_id -> the exercise cell's code: solved, or as nbgrader releases it (stub)."""
    out = {}
    for cell in _cells():
        meta = _grading(cell)
        if meta.get("solution") and cell["cell_type"] == "code":
            code = "".join(cell["source"])
            if stub:
                code = re.sub(r"^( *)### BEGIN SOLUTION\n.*?^ *### END SOLUTION\n?", r"\1raise NotImplementedError()\n",
                              code, flags=re.S | re.M)
            out[meta["grade_id"]] = code
    return out


def _namespace(stub: bool) -> dict:
    """The exercises defined as the notebook defines them, with the names their code uses."""
    ns = {"math": math, "np": np, "torch": torch, "nn": nn, "F": F}
    for grade_id, code in _exercise_sources(stub).items():
        exec(compile(code, f"<02_train_stage2 {grade_id}>", "exec"), ns)  # noqa: S102 - the notebook's own cells
    return ns


def test_notebook_marks_the_five_exercises():
    cells = _cells()
    ids = [_grading(c).get("grade_id") for c in cells]
    assert [i for i in ids if i in EXERCISES] == list(EXERCISES)
    graded = {_grading(c)["grade_id"]: _grading(c) for c in cells if _grading(c).get("grade")}
    assert {k: v["points"] for k, v in graded.items()} == CHECKS
    for cell in cells:
        meta, code = _grading(cell), "".join(cell["source"])
        if meta.get("solution"):
            assert meta == {"grade": False, "grade_id": meta["grade_id"], "locked": False, "schema_version": 3,
                            "solution": True}
            assert code.count("### BEGIN SOLUTION") == 1 and code.count("### END SOLUTION") == 1
            assert code.startswith("def "), "the solution region must sit inside the function body"
        if meta.get("grade"):
            assert meta["locked"] and not meta["solution"]
            check = meta["grade_id"].replace("check_gamma_func", "check_gamma")
            lines = code.splitlines()
            assert lines[0] == f"from labcore.checkers import {check}", lines   # its own checker, not a global
            assert lines.index("### BEGIN HIDDEN TESTS") < lines.index("### END HIDDEN TESTS")
            assert any(line.startswith(f"assert {check}(") and ").passed" in line for line in lines), lines


def test_notebook_solutions_pass_their_checkers():
    ns = _namespace(stub=False)
    ns["mask_tokens_used"], ns["masked_loss_used"] = ns["mask_tokens"], ns["masked_loss"]
    for result in (check_gamma(ns["gamma_func"]), check_mask_tokens(ns["mask_tokens"]),
                   check_masked_loss(ns["masked_loss"]), check_configure_optimizers(ns["configure_optimizers"]),
                   check_train_one_epoch(ns["train_one_epoch"]),
                   check_training_loop(ns["configure_optimizers"], ns["train_one_epoch"])):
        assert result.passed and result.mistakes == [] and not result.notes, str(result)


def test_notebook_loop_runs_with_labcore_s_pieces():
    """Before exercise 4 passes, the notebook's train_one_epoch calls labcore's mask_tokens and
    masked_loss (its globals mask_tokens_used, masked_loss_used): allowed, and still the student's."""
    ns = _namespace(stub=False)
    ns["mask_tokens_used"], ns["masked_loss_used"] = reference_mask_tokens, reference_masked_loss
    result = check_train_one_epoch(ns["train_one_epoch"])
    assert result.passed and result.mistakes == [], str(result)


def test_notebook_solutions_use_the_generator():
    """The solved mask_tokens draws only from the generator it is given: the same seed, the same masks
    (the notebook's NBVAL_CHECK_OUTPUT cell relies on it)."""
    mask_tokens = _namespace(stub=False)["mask_tokens"]
    tokens = torch.randint(0, 512, (8, 256))
    a = mask_tokens(tokens, 512, gamma("cosine"), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)
    b = mask_tokens(tokens, 512, gamma("cosine"), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_released_stubs_are_not_done_and_fall_back(capsys):
    ns = _namespace(stub=True)
    checks = {"gamma_func": check_gamma(ns["gamma_func"]),
              "masking": check_masking(ns["mask_tokens"], ns["masked_loss"]),
              "configure_optimizers": check_configure_optimizers(ns["configure_optimizers"]),
              "train_one_epoch": check_train_one_epoch(ns["train_one_epoch"]),
              "loop": check_training_loop(ns["configure_optimizers"], ns["train_one_epoch"])}
    for name, result in checks.items():
        assert not result.passed and result.not_done, f"{name}: {result}"
        assert "not done yet" in str(result)
    used = yours_or_reference(checks["loop"], ns["train_one_epoch"], reference_train_one_epoch, "train_one_epoch")
    assert used is reference_train_one_epoch
    assert "labcore's reference" in capsys.readouterr().out
    for name, reference_piece in (("configure_optimizers", reference_configure_optimizers),
                                  ("train_one_epoch", reference_train_one_epoch)):
        assert yours_or_reference(name) is reference_piece        # each piece falls back by its own check
