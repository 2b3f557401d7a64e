"""labcore train / train-vqgan: tokens, the MVTM loop, the run folder and exact resume of both
stages, DDP (gloo, 2 processes), errors.

Tokens come from real emoji64 images through a small randomly initialised VQGAN (K=32), so the
tests do not wait for the bundled tokenizer; the model is tiny so that everything runs in seconds.
"""

import csv
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

import labcore.maskgit
from labcore.__main__ import main
from labcore.model_files import load_transformer
from labcore.runtime import atomic_save
from labcore.training import (TrainConfig, VQGANTrainConfig, evaluate, load_tokens, make_tokens, read_config_file,
                              resolve_config, train, train_vqgan)
from labcore.training.precision import autocast
from labcore.training.runs import CSVLog, NonFiniteLoss
from labcore.training.steps import seed_step, warmup_cosine
from labcore.transformer import BidirectionalTransformer, TransformerConfig

from shared_fixtures import tiny_vqgan_config

REPO = Path(__file__).resolve().parents[1]
MODEL = dict(dim=32, n_layers=2, hidden_dim=64, num_heads=4)
K = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory, one_thread) -> Path:
    from labcore.vqgan import VQGAN

    folder = tmp_path_factory.mktemp("tokens")
    torch.manual_seed(0)
    cfg = tiny_vqgan_config(latent_dim=16, K=K)  # checked when made
    (folder / "vqgan.yml").write_text(yaml.safe_dump({"model_param": cfg.to_dict()}))
    atomic_save(VQGAN(cfg).state_dict(), folder / "vqgan.pt")
    make_tokens(folder / "tokens.pt", folder / "vqgan.yml", folder / "vqgan.pt", limit=48, device="cpu",
                progress=False)
    return folder / "tokens.pt"


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=8, lr=3e-3, warmup_steps=3, log_every=1, save_every=1000,
                precision="fp32", val_batch_size=48, label_smoothing=0.0)
    return TrainConfig(**{**base, **kw})


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_make_tokens_records_the_tokenizer(tokens_file):
    data = load_tokens(tokens_file)
    assert data["train"].shape == data["train_flip"].shape == (48, 256) and data["val"].shape == (48, 256)
    assert data["train"].dtype == torch.long and data["num_codebook_vectors"] == K
    assert 0 <= int(data["train"].min()) and int(data["train"].max()) < K
    assert len(data["tokenizer_sha256"]) == 64
    assert not torch.equal(data["train"], data["train_flip"])   # flipped images encode differently


def test_training_lowers_the_validation_loss(tokens_file, tmp_path):
    val = load_tokens(tokens_file)["val"]
    torch.manual_seed(0)
    untrained = evaluate(BidirectionalTransformer(TransformerConfig(**MODEL, num_codebook_vectors=K)), val, K)
    result = train(tmp_path / "run", MODEL, _cfg(epochs=3), tokens_file, progress=False)
    assert result.step == result.total_steps == 18
    after = result.metrics
    assert after["loss"] < untrained["loss"] - 0.5, (untrained, after)
    assert after["accuracy"] > untrained["accuracy"] + 0.1, (untrained, after)
    for ratio in (0.25, 0.5, 0.75):
        assert 0 <= after[f"accuracy@{ratio}"] <= 1
    # the run folder: course-format weights + a config that rebuilds the model
    model = load_transformer(tmp_path / "run" / "best.pt", tmp_path / "run" / "config.yml")
    assert model.config.num_codebook_vectors == K
    rows = _rows(tmp_path / "run" / "log.csv")
    assert len(rows) == 18 and {"loss", "accuracy", "lr"} <= rows[0].keys()
    assert len(_rows(tmp_path / "run" / "val.csv")) == 3


def test_resume_is_exact(tokens_file, tmp_path):
    cfg = _cfg(batch_size=4, grad_accum=2, ema=0.9, flip=True, label_smoothing=0.1)   # 6 steps per epoch
    whole = train(tmp_path / "whole", MODEL, cfg, tokens_file, progress=False)
    first = train(tmp_path / "parts", MODEL, cfg, tokens_file, stop_after=8, progress=False)
    assert first.step == 8 and first.stopped_early
    with pytest.raises(FileExistsError, match="--resume"):
        train(tmp_path / "parts", MODEL, cfg, tokens_file, progress=False)
    second = train(tmp_path / "parts", MODEL, cfg, tokens_file, resume=True, progress=False)
    assert whole.step == second.step == 12
    losses = lambda run: [r["loss"] for r in _rows(tmp_path / run / "log.csv")]  # noqa: E731
    assert len(losses("parts")) == 12 and losses("parts") == losses("whole")
    assert _rows(tmp_path / "parts" / "val.csv") == _rows(tmp_path / "whole" / "val.csv")
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "whole" / name, weights_only=True)
        b = torch.load(tmp_path / "parts" / name, weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert_run_folder(tmp_path / "parts", {"config.yml", "val.csv", "metrics.json"})


def assert_run_folder(run: Path, own: set[str]) -> None:
    """The run folder of both stages: last.pt / best.pt plain state dicts of CPU tensors (the
    course's format), train_state.pt with what resumes, log.csv, and the stage's ``own`` files."""
    assert {"last.pt", "best.pt", "train_state.pt", "log.csv"} | own <= {p.name for p in run.iterdir()}
    for name in ("last.pt", "best.pt"):
        weights = torch.load(run / name, weights_only=True)
        assert all(isinstance(k, str) and torch.is_tensor(v) and v.device.type == "cpu" for k, v in weights.items())
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert {"step", "total_steps", "model", "optimizer", "scheduler", "ema", "best", "model_config",
            "train_config"} <= state.keys()


def test_stage1_resume_is_exact(tmp_path):
    """train-vqgan with everything on (PatchGAN from step 2, EMA codebook, dead-code restarts,
    flips): 4 steps == 2 steps, stop, resume to 4, bit for bit."""
    model_cfg = replace(tiny_vqgan_config(latent_dim=16, K=32), enc_res_blocks=1, dec_res_blocks=1)
    cfg = VQGANTrainConfig(steps=4, batch_size=4, warmup_steps=2, restart_every=2, disc_start=2, disc_width=8,
                           eval_every=2, save_every=1000, limit=16, val_limit=4, precision="fp32")
    common = dict(device="cpu", progress=False)
    train_vqgan(tmp_path / "whole", model_cfg, cfg, **common)
    train_vqgan(tmp_path / "parts", model_cfg, cfg, stop_after=2, **common)
    assert torch.load(tmp_path / "parts" / "train_state.pt", weights_only=True)["step"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        train_vqgan(tmp_path / "parts", model_cfg, cfg, **common)
    train_vqgan(tmp_path / "parts", model_cfg, cfg, resume=True, **common)
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "whole" / name, weights_only=True)
        b = torch.load(tmp_path / "parts" / name, weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    drop_time = lambda run: [{**r, "seconds": ""} for r in _rows(tmp_path / run / "log.csv")]  # noqa: E731
    assert len(drop_time("parts")) == 4 and drop_time("parts") == drop_time("whole")
    assert_run_folder(tmp_path / "parts", {"vqgan.yml", "samples"})


def test_stage1_resume_is_exact_across_warmup_epochs_evaluations_and_restarts(tmp_path):
    """A longer run, stopped three times (#29): after the warm-up in the middle of an epoch (5),
    right after an evaluation (9) and after a dead-code restart (13), each time resumed; weights,
    EMA codebook and log bit for bit those of the run that never stopped. (4 steps were too short
    to see that the EMA codebook's gradient, never cleared by the optimizer, grew in the run that
    never stopped and restarted from none in a resumed one: the gradient clip then differed.)"""
    model_cfg = replace(tiny_vqgan_config(latent_dim=16, K=512), enc_res_blocks=1, dec_res_blocks=1)
    cfg = VQGANTrainConfig(steps=18, batch_size=4, warmup_steps=4, restart_every=6, disc_start=-1, eval_every=8,
                           save_every=1000, limit=16, val_limit=4, precision="fp32", grad_clip=0.5)
    common = dict(device="cpu", progress=False)
    train_vqgan(tmp_path / "whole", model_cfg, cfg, **common)
    for i, stop in enumerate((5, 9, 13, None)):
        train_vqgan(tmp_path / "parts", model_cfg, cfg, resume=i > 0, stop_after=stop, **common)
    a = torch.load(tmp_path / "whole" / "train_state.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "train_state.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), "weights differ"
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"]), "EMA codebook differs"
    drop_time = lambda run: [{**r, "seconds": ""} for r in _rows(tmp_path / run / "log.csv")]  # noqa: E731
    assert len(drop_time("parts")) == 18 and drop_time("parts") == drop_time("whole")
    assert any(int(r["restarted"]) > 0 for r in _rows(tmp_path / "whole" / "log.csv")), "no codebook restart seen"


def test_cli_config_file_and_resume(tokens_file, tmp_path, capsys):
    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump({"preset": "emoji64", "model": MODEL,
                                      "train": dict(epochs=1, batch_size=8, warmup_steps=2, log_every=1)}))
    args = ["train", "--config", str(config), "--tokens", str(tokens_file), "--run-dir", str(tmp_path / "r"),
            "--no-progress", "--device", "cpu"]
    assert main(args + ["--stop-after", "2"]) == 0
    saved = yaml.safe_load((tmp_path / "r" / "config.yml").read_text())
    assert saved["model_param"]["Transformer_param"]["dim"] == 32 and saved["train"]["batch_size"] == 8
    assert saved["model_param"]["num_codebook_vectors"] == K                 # K came from the tokenizer
    before = {f.name: f.read_bytes() for f in (tmp_path / "r").iterdir() if f.is_file()}
    assert main(args) == 2                      # an existing run: one error line, nothing touched
    assert {f.name: f.read_bytes() for f in (tmp_path / "r").iterdir() if f.is_file()} == before
    err = capsys.readouterr().err.strip()
    assert err.startswith("labcore train: error:") and "--resume" in err and str(tmp_path / "r") in err, err
    stem = tmp_path / "published" / "tiny"
    publish = ["train", "--run-dir", str(tmp_path / "r"), "--publish", str(stem)]
    assert main(publish) == 2                                                # unfinished: refused
    assert not stem.parent.exists()
    assert main(["train", "--run-dir", str(tmp_path / "r"), "--resume", "--no-progress", "--device", "cpu"]) == 0
    assert len(_rows(tmp_path / "r" / "log.csv")) == 6                       # 48 // 8 steps, no repeats

    assert main(publish) == 0
    metrics = json.loads((tmp_path / "published" / "tiny_metrics.json").read_text())
    best = json.loads((tmp_path / "r" / "metrics.json").read_text())["best"]
    assert metrics["steps"] == 6 and metrics["best_step"] == best["step"]
    for ratio in (0.25, 0.5, 0.75):
        assert metrics["val"][f"accuracy@{ratio}"] == round(best[f"accuracy@{ratio}"], 4)
    published = load_transformer(stem.with_suffix(".pt"), stem.with_suffix(".yml"))
    assert metrics["parameters"] == sum(p.numel() for p in published.parameters())
    source = torch.load(tmp_path / "r" / "best.pt", weights_only=True)
    assert all(torch.equal(v, source[k]) for k, v in published.state_dict().items())
    assert _rows(tmp_path / "published" / "tiny_log.csv") == _rows(tmp_path / "r" / "log.csv")


def test_nan_loss_stops_and_keeps_the_last_good_state(tokens_file, tmp_path, monkeypatch):
    real, calls = labcore.maskgit.mvtm_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(labcore.maskgit, "mvtm_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match="step 4"):
        train(tmp_path / "nan", MODEL, _cfg(save_every=1), tokens_file, progress=False)
    state = torch.load(tmp_path / "nan" / "train_state.pt", weights_only=True)
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_cli_train_nan_loss_is_one_error_line(tokens_file, tmp_path, monkeypatch, capsys):
    """``labcore train`` names NonFiniteLoss in its ERRORS: labcore.cli.main prints one error line."""
    real = labcore.maskgit.mvtm_loss

    def diverged(*args, **kwargs):
        out = real(*args, **kwargs)
        return {**out, "loss": out["loss"] * float("nan")}

    monkeypatch.setattr(labcore.maskgit, "mvtm_loss", diverged)
    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump({"model": MODEL, "train": dict(epochs=1, batch_size=8, precision="fp32")}))
    assert main(["train", "--config", str(config), "--tokens", str(tokens_file), "--run-dir", str(tmp_path / "r"),
                 "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labcore train: error: loss is nan at step 1;") and "Traceback" not in err, err


def test_warmup_cosine_rises_linearly_then_decays_to_its_floor():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    schedule = warmup_cosine(opt, warmup_steps=4, total_steps=12, min_factor=0.1)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs[0] == pytest.approx(2e-3) and lrs[4] == pytest.approx(2.0)      # warm-up ends at the base LR
    assert all(a < b for a, b in zip(lrs[:4], lrs[1:5]))                       # rising, evenly
    assert lrs[2] - lrs[1] == pytest.approx(lrs[1] - lrs[0])
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:]))                        # then falling
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)                      # to min_factor x base


def test_seed_step_draws_depend_on_seed_step_and_rank_alone():
    def draws(*key):
        gen = seed_step(*key)
        return torch.cat([torch.rand(4), torch.rand(4, generator=gen)])  # (8,) global RNG, then the generator's
    first = draws(7, 5)
    torch.rand(100)                                                      # whatever ran before does not matter
    assert torch.equal(draws(7, 5), first)
    for other in [(8, 5), (7, 6), (7, 5, 1)]:
        assert not torch.equal(draws(*other), first), other


def test_csv_log_keeps_its_header_and_on_resume_only_the_checkpoints_rows(tmp_path):
    path = tmp_path / "logs" / "log.csv"
    log = CSVLog(path, ["step", "loss"])
    for step in range(1, 6):
        log.log(step=step, loss=step / 10, extra="not a field")
    assert [(r["step"], float(r["loss"])) for r in _rows(path)] == [(str(s), s / 10) for s in range(1, 6)]
    CSVLog(path, ["step", "loss"], resume_step=3).log(step=4)              # resumed from step 3
    assert [(r["step"], r["loss"]) for r in _rows(path)] == [("1", "0.1"), ("2", "0.2"), ("3", "0.3"), ("4", "")]
    CSVLog(path, ["step", "loss"])                                          # a new run: the header only
    assert path.read_text().splitlines() == ["step,loss"]


def test_autocast_is_bf16_only_when_enabled():
    x = torch.ones(2, 2)                                                    # (2, 2) fp32
    with autocast(torch.device("cpu"), True):
        assert (x @ x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), False):
        assert (x @ x).dtype == torch.float32


@pytest.mark.skipif(sys.platform == "win32", reason="gloo process groups are not tested on Windows")
def test_ddp_two_processes_gloo(tokens_file, tmp_path):
    config = tmp_path / "ddp.yml"
    config.write_text(yaml.safe_dump({"model": MODEL, "train": dict(epochs=1, batch_size=4, log_every=1,
                                                                    precision="fp32", warmup_steps=2)}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "labcore", "train", "--config", str(config), "--tokens", str(tokens_file),
           "--run-dir", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "cpu x2" in proc.stdout and "2 ranks in sync" in proc.stdout
    rows = _rows(tmp_path / "ddp" / "log.csv")
    assert len(rows) == 48 // (2 * 4)                                        # the sampler split the data
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    load_transformer(tmp_path / "ddp" / "last.pt", tmp_path / "ddp" / "config.yml")


def test_config_errors(tokens_file, tmp_path):
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp8'"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="betas must be two numbers in"):
        TrainConfig(betas=(0.9,))
    with pytest.raises(ValueError, match="unknown mask schedule 'nope'.*cosine"):
        TrainConfig(schedule="nope")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        resolve_config("huge")
    bad = tmp_path / "bad.yml"
    bad.write_text("train: {learning_rate: 0.1}\n")
    with pytest.raises(ValueError, match=r"bad\.yml: unknown train key\(s\) \['learning_rate'\]"):
        read_config_file(bad)
    bad.write_text("model: {dim: 48, num_heads: 5}\n")
    with pytest.raises(ValueError, match="divisible"):
        resolve_config("emoji64", bad)
    with pytest.raises(ValueError, match="num_codebook_vectors=16.*K=32"):
        train(tmp_path / "k", {**MODEL, "num_codebook_vectors": 16}, _cfg(), tokens_file, progress=False)
    with pytest.raises(ValueError, match="fewer than one step"):
        train(tmp_path / "b", MODEL, _cfg(batch_size=64), tokens_file, progress=False)


def test_tokens_file_errors(tmp_path):
    floats = atomic_save(torch.rand(4, 256), tmp_path / "floats.pt")
    with pytest.raises(ValueError, match="floats.pt.*integer tensor"):
        load_tokens(floats)
    vqgan_like = atomic_save({"encoder.model.0.weight": torch.zeros(2)}, tmp_path / "vq.pt")
    with pytest.raises(ValueError, match="vq.pt.*'train'"):
        load_tokens(vqgan_like)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_tokens(tmp_path / "missing.pt")


def test_eval_transformer_cli_reports_the_evaluate_figures(tokens_file, tmp_path, capsys):
    """`labcore eval-transformer` prints and writes exactly what `evaluate` computes on the val split."""
    run = tmp_path / "run"
    model_dict, cfg, preset = resolve_config("emoji64", train_overrides=dict(max_steps=4, batch_size=8,
                                             precision="fp32", val_batch_size=48))
    model_dict.update(MODEL)
    train(run, model_dict, cfg, tokens_file, preset=preset, progress=False)
    out = tmp_path / "eval.json"
    assert main(["eval-transformer", "--weights", str(run / "best.pt"), "--config", str(run / "config.yml"),
                 "--tokens", str(tokens_file), "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = evaluate(load_transformer(run / "best.pt", run / "config.yml"), load_tokens(tokens_file)["val"], K)
    written = json.loads(out.read_text())
    for r in (0.25, 0.5, 0.75):
        assert written[f"accuracy@{r}"] == pytest.approx(expected[f"accuracy@{r}"], abs=1e-6)
        assert f"mask ratio {r:.2f}: val loss {expected[f'loss@{r}']:.4f}" in printed
    flat = {"train": load_tokens(tokens_file)["train"]}  # no val split: one error line, exit 2
    atomic_save(flat, tmp_path / "no_val.pt")
    assert main(["eval-transformer", "--weights", str(run / "best.pt"), "--config", str(run / "config.yml"),
                 "--tokens", str(tmp_path / "no_val.pt")]) == 2
    assert "no 'val' split" in capsys.readouterr().err
