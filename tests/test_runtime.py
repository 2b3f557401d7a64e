"""labcore.runtime: checkpoints are written with CPU tensors, atomically, and load with weights_only.

(CUDA tensors cannot be made on this CPU-only machine: scripts/gpu-check.sh checks on a GPU that every
checkpoint a CUDA run writes holds CPU tensors only.)"""

import os
import stat

import torch
from torch import nn

from labcore.runtime import atomic_save, atomic_write_text, staged_output_dir, to_cpu


def test_to_cpu_keeps_structure_values_and_state_dict_metadata():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    state = model.state_dict()
    obj = {"model": state, "step": 7, "history": [torch.arange(3), (torch.ones(2), "tag")]}
    out = to_cpu(obj)
    assert out["step"] == 7 and out["history"][1][1] == "tag"
    assert isinstance(out["history"][1], tuple) and type(out["model"]) is type(state)
    assert torch.equal(out["history"][0], torch.arange(3))
    assert list(out["model"]) == list(state)
    assert all(torch.equal(out["model"][k], state[k]) for k in state)
    assert out["model"]._metadata == state._metadata  # BatchNorm's version info survives
    assert all(t.device.type == "cpu" for t in out["model"].values())


def test_atomic_save_round_trip_loads_weights_only_and_strict(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    path = atomic_save(model.state_dict(), tmp_path / "sub" / "model.pt")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left
    state = torch.load(path, weights_only=True)
    fresh = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(5, 4)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_written_files_and_output_folders_get_the_usual_permissions(tmp_path):
    """mkstemp/mkdtemp make 0600 files and 0700 folders; labcore's outputs (checkpoints, tables,
    inpainted images) must be as readable as a plain open()/mkdir would make them, under any umask."""
    old = os.umask(0o027)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        written = atomic_write_text("x", tmp_path / "table.md")
        with staged_output_dir(tmp_path / "out") as staging:
            (staging / "a.png").write_bytes(b"x")
        (tmp_path / "plain_dir").mkdir()
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(written) == mode(plain) == 0o640
    assert mode(tmp_path / "out") == mode(tmp_path / "plain_dir") == 0o750


# ----------------------------------------------------------------------------- bad files at the edge
# Every file a user hands to a loader: a FileNotFoundError / ValueError naming the file and saying
# why; on the command line one line `labcore <command>: error: ...`, exit 2, nothing written.

import shutil  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from labcore.__main__ import main  # noqa: E402
from labcore.model_files import load_vqgan, read_transformer_config, read_vqgan_config  # noqa: E402
from labcore.runtime import load_file, read_yaml_mapping  # noqa: E402


def junk_files(tmp_path):
    """name -> (bytes, the reason the message must give)."""
    files = {"empty.pt": (b"", "empty file"), "junk.pt": (b"junk junk junk", "not a torch checkpoint"),
             "truncated.pt": (b"PK\x03\x04 cut short", "not a torch checkpoint"),
             "text.pt": (b"model_param: {}\n", "not a torch checkpoint")}
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    return {tmp_path / name: why for name, (_, why) in files.items()}


def test_load_file_names_the_file_and_says_why(tmp_path):
    for path, why in junk_files(tmp_path).items():
        with pytest.raises(ValueError, match=f"tokens file {path}: {why}"):
            load_file(path, what="tokens file")
    with pytest.raises(FileNotFoundError, match="tokens file not found: .*nope.pt"):
        load_file(tmp_path / "nope.pt", what="tokens file")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")                 # a whole module, not a state dict
    with pytest.raises(ValueError, match="module.pt: holds Python objects other than tensors"):
        load_file(tmp_path / "module.pt")


VQGAN_YML = {"image_channels": 3, "enc_channels": [32, 32, 32, 32], "dec_channels": [32, 32, 32],
             "latent_dim": 8, "img_resolution": 64, "latent_resolution": 16, "num_codebook_vectors": 64}


@pytest.mark.parametrize("text, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not a text file"),
    (b"model_param: {enc_channels: [32, 32\n", "invalid YAML"),
    (b"- 1\n- 2\n", "expected a mapping of keys at the top level, got a list"),
    (b"model_param: [1, 2]\n", "model_param must be a mapping"),
])
def test_unreadable_yml_is_named(tmp_path, text, message):
    path = tmp_path / "VQGAN.yml"
    path.write_bytes(text)
    with pytest.raises(ValueError, match=f"VQGAN.yml.*{message}"):
        read_vqgan_config(path)
    if "model_param" not in message:
        with pytest.raises(ValueError, match=f"MaskGit.yml.*{message}"):
            read_transformer_config(shutil.copy(path, tmp_path / "MaskGit.yml"))
        with pytest.raises(ValueError, match=message):
            read_yaml_mapping(path)


@pytest.mark.parametrize("key, value, message", [
    ("enc_channels", 32, "enc_channels must be a list of positive integers, got 32"),
    ("dec_channels", [32, "wide"], "dec_channels must be a list of positive integers"),
    ("latent_resolution", 0, "latent_resolution must be a positive integer, got 0"),
    ("latent_dim", "256", "latent_dim must be a positive integer, got '256'"),
    ("num_codebook_vectors", 1.5, "num_codebook_vectors must be a positive integer"),
    ("beta", "high", "beta must be a number >= 0"),
    ("img_resolution", 8, "img_resolution 8 must be latent_resolution 16 times a power of 2"),
])
def test_wrong_types_in_the_vqgan_yml_name_key_and_file(tmp_path, key, value, message):
    path = tmp_path / "VQGAN.yml"
    path.write_text(yaml.safe_dump({"model_param": {**VQGAN_YML, key: value}}))
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        read_vqgan_config(path)


def test_wrong_types_in_the_transformer_yml_name_key_and_file(tmp_path):
    path = tmp_path / "MaskGit.yml"
    path.write_text("model_param:\n  Transformer_param: {dim: big, n_layers: 2}\n")
    with pytest.raises(ValueError, match=f"{path}: .*dim must be a positive integer, got 'big'"):
        read_transformer_config(path)
    path.write_text("model_param:\n  Transformer_param: {dropout: lots}\n")
    with pytest.raises(ValueError, match=f"{path}: "):
        read_transformer_config(path)


def test_vqgan_weights_that_are_junk(tmp_path, lab_format):
    for path, why in junk_files(tmp_path).items():
        with pytest.raises(ValueError, match=f"VQGAN checkpoint {path}: {why}"):
            load_vqgan(lab_format / "vqgan_tiny.yml", path)


def inpaint(tmp_path, **files) -> tuple[int, str]:
    flags = [f for name, path in files.items() for f in (f"--{name.replace('_', '-')}", str(path))]
    return main(["inpaint", "--limit", "1", "--total-iter", "1", "--no-steps", "--device", "cpu",
                 "-o", str(tmp_path / "out"), *flags])


@pytest.mark.parametrize("case", ["empty weights", "junk weights", "binary yml", "bad yml type",
                                  "transformer without config"])
def test_cli_bad_model_files_exit_2_and_write_nothing(tmp_path, lab_format, capsys, case):
    junk = {p.name: p for p in junk_files(tmp_path)}
    files = dict(vqgan_config=lab_format / "vqgan_tiny.yml", vqgan_weights=lab_format / "vqgan_tiny.pt",
                 transformer_config=lab_format / "transformer_tiny.yml",
                 transformer_weights=lab_format / "transformer_tiny.pt")
    bad_yml = tmp_path / "bad.yml"
    if case == "empty weights":
        files["vqgan_weights"], message = junk["empty.pt"], "empty.pt: empty file"
    elif case == "junk weights":
        files["transformer_weights"], message = junk["junk.pt"], "junk.pt: not a torch checkpoint"
    elif case == "binary yml":
        bad_yml.write_bytes(b"\xff\xfe\x00binary")
        files["vqgan_config"], message = bad_yml, "bad.yml: not a text file"
    elif case == "bad yml type":
        bad_yml.write_text(yaml.safe_dump({"model_param": {**VQGAN_YML, "enc_channels": 32}}))
        files["vqgan_config"], message = bad_yml, "bad.yml: enc_channels must be a list"
    else:
        del files["transformer_config"]
        message = "transformer_tiny.pt: no transformer config given"
    assert inpaint(tmp_path, **files) == 2
    err = capsys.readouterr().err
    assert err.startswith("labcore inpaint: error: ") and message in err
    assert not (tmp_path / "out").exists()
