"""labcore.transformer and labcore.model_files against the course's checkpoint format (../shared/lab-format)."""

import json
import re

import pytest
import torch

from labcore.course_format import convert_state_dict
from labcore.model_files import (bundled_transformer_paths, config_from_state_dict, load_bundled_transformer,
                                 load_bundled_maskgit, load_maskgit, load_transformer, read_transformer_config,
                                 transformer_config)
from labcore.runtime import atomic_save, count_parameters
from labcore.transformer import BidirectionalTransformer, TransformerConfig

TINY = dict(dim=64, hidden_dim=128, n_layers=2, num_codebook_vectors=64)


def test_official_config_has_the_course_keys_and_shapes(lab_format):
    expected = json.loads((lab_format / "transformer_lab_keys.json").read_text())
    with torch.device("meta"):   # shapes only: no 72M-parameter allocation
        model = BidirectionalTransformer(TransformerConfig())   # defaults = the official MaskGit.yml
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected


@pytest.mark.parametrize("fused", [True, False])
def test_tiny_checkpoint_reproduces_the_course_logits(lab_format, fused):
    cfg = read_transformer_config(lab_format / "transformer_tiny.yml")
    assert (cfg.dim, cfg.n_layers, cfg.hidden_dim, cfg.num_codebook_vectors) == (64, 2, 128, 64)
    cfg.fused_attention = fused
    model = load_transformer(lab_format / "transformer_tiny.pt", cfg)
    io = torch.load(lab_format / "transformer_tiny_io.pt", weights_only=True)
    with torch.no_grad():
        logits = model(io["tokens"])
    assert logits.shape == io["logits"].shape == (2, 256, 65)
    assert (logits - io["logits"]).abs().max().item() < 1e-5    # the issue asks for 1e-4


def test_config_read_off_the_checkpoint(lab_format):
    state = torch.load(lab_format / "transformer_tiny.pt", weights_only=True)
    cfg = config_from_state_dict(state, num_heads=16)
    assert (cfg.dim, cfg.n_layers, cfg.hidden_dim, cfg.num_codebook_vectors, cfg.num_image_tokens) == \
        (64, 2, 128, 64, 256)
    io = torch.load(lab_format / "transformer_tiny_io.pt", weights_only=True)
    with torch.no_grad():
        logits = load_transformer(lab_format / "transformer_tiny.pt", num_heads=16)(io["tokens"])   # no config given
    assert (logits - io["logits"]).abs().max().item() < 1e-5


def _to_separate_projections(state: dict, out_name: str) -> dict:
    """Rewrite a fused-layout state dict the way a student's query/key/value module saves it."""
    student = {}
    for key, value in state.items():
        m = re.match(r"(.*\.Attention)\.qkv\.(weight|bias)$", key)
        if m:
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                student[f"{m.group(1)}.{name}.{m.group(2)}"] = part.clone()
        elif ".Attention.proj." in key:
            student[key.replace(".proj.", f".{out_name}.")] = value
        else:
            student[key] = value
    return student


@pytest.mark.parametrize("out_name", ["proj", "out"])
def test_query_key_value_checkpoints_load(lab_format, tmp_path, out_name):
    state = torch.load(lab_format / "transformer_tiny.pt", weights_only=True)
    student = _to_separate_projections(state, out_name)
    assert not any(".qkv." in k for k in student) and any(".Attention.query.weight" in k for k in student)
    converted = convert_state_dict(student)
    assert converted.keys() == state.keys()
    for k in state:
        assert torch.equal(converted[k], state[k]), k
    path = atomic_save(student, tmp_path / "student.pt")
    model = load_transformer(path, TransformerConfig(**TINY))
    io = torch.load(lab_format / "transformer_tiny_io.pt", weights_only=True)
    with torch.no_grad():
        assert (model(io["tokens"]) - io["logits"]).abs().max().item() < 1e-5


def test_incomplete_separate_projections_are_an_error():
    state = {"blocks.0.Attention.query.weight": torch.zeros(4, 4), "blocks.0.Attention.key.weight": torch.zeros(4, 4)}
    with pytest.raises(ValueError, match=r"blocks\.0\.Attention.*\['v'\]"):
        convert_state_dict(state)


def test_attention_maps_for_visualisation():
    torch.manual_seed(0)
    model = BidirectionalTransformer(TransformerConfig(**TINY, num_heads=4, num_image_tokens=64)).eval()
    tokens = torch.randint(0, 65, (2, 64))
    with torch.no_grad():
        plain = model(tokens)
        logits, maps = model(tokens, return_attention=True)
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)
    assert len(maps) == 2 and all(m.shape == (2, 4, 64, 64) for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 4, 64))


def test_course_init_and_weight_tying():
    torch.manual_seed(0)
    model = BidirectionalTransformer(TransformerConfig(**TINY))
    assert model.mask_token_id == 64
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert model.bias.abs().sum().item() == 0 and model.LN.eps == 1e-12
    groups = model.param_groups(0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    assert id(model.blocks[0].Attention.qkv.weight) in decayed
    assert not {id(model.tok_emb.weight), id(model.pos_emb), id(model.bias), id(model.LN.weight)} & decayed
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(model)


def test_a_vqgan_checkpoint_is_named_as_such(tmp_path):
    vqgan_like = {"encoder.model.0.weight": torch.zeros(3), "codebook.embedding.weight": torch.zeros(8, 4)}
    path = atomic_save(vqgan_like, tmp_path / "VQGAN.pt")
    with pytest.raises(ValueError, match="stage-1 VQGAN"):
        load_transformer(path, TransformerConfig(**TINY))


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_transformer(tmp_path / "nope.pt")
    state = BidirectionalTransformer(TransformerConfig(**TINY)).state_dict()
    path = atomic_save(state, tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match=r"tiny\.pt.*\n.*mis-shaped: pos_emb"):
        load_transformer(path, TransformerConfig(**{**TINY, "dim": 32}))
    train_state = atomic_save({"model": state, "optimizer": {}, "step": 3}, tmp_path / "train_state.pt")
    with pytest.raises(ValueError, match="training-state file"):
        load_transformer(train_state)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_transformer(garbage)


def test_bad_configs(tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(dim=100, num_heads=16)
    with pytest.raises(ValueError, match="n_layers"):
        TransformerConfig(n_layers=0)
    with pytest.raises(ValueError, match=r"unknown transformer key\(s\) \['depth'\]"):
        transformer_config({"model_param": {"Transformer_param": {"depth": 3}}})
    bad = tmp_path / "bad.yml"
    bad.write_text("model_param:\n  Transformer_param: {dim: 64, n_layer: 2}\n")
    with pytest.raises(ValueError, match="bad.yml"):
        read_transformer_config(bad)


def test_bundled_transformer():
    weights, config = bundled_transformer_paths()
    if not (weights.is_file() and config.is_file()):
        with pytest.raises(FileNotFoundError, match="transformer_emoji64"):
            load_bundled_transformer()
        return
    model = load_bundled_transformer()
    tokens = torch.randint(0, model.mask_token_id + 1, (1, model.config.num_image_tokens))
    with torch.no_grad():
        assert model(tokens).shape == (1, model.config.num_image_tokens, model.mask_token_id + 1)
    assert weights.stat().st_size <= 30 * 2**20


def test_no_config_needs_the_yml_or_num_heads(lab_format, tmp_path):
    """Heads leave no trace in the shapes: without a config the loader asks for it (naming the
    file) rather than guessing 16; with num_heads given the shapes are read off the tensors."""
    with pytest.raises(ValueError, match=r"transformer_tiny\.pt: no transformer config given.*config yml"):
        load_transformer(lab_format / "transformer_tiny.pt")
    state = torch.load(lab_format / "transformer_tiny.pt", weights_only=True)
    assert config_from_state_dict(state, num_heads=4).num_heads == 4
    with pytest.raises(TypeError):
        config_from_state_dict(state)                                   # num_heads has no default
    gap = {k: v for k, v in state.items() if not k.startswith("blocks.0.")}
    gap["blocks.0.MLP.0.weight"] = state["blocks.0.MLP.0.weight"]
    gap = {k.replace("blocks.1.", "blocks.2."): v for k, v in gap.items()}   # blocks 0 and 2
    with pytest.raises(ValueError, match=r"gap\.pt: transformer blocks are not numbered 0\.\.1: \[0, 2\]"):
        load_transformer(atomic_save(gap, tmp_path / "gap.pt"), num_heads=16)


def test_junk_weights_and_configs_name_the_file(tmp_path, lab_format):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="transformer checkpoint .*empty.pt: empty file"):
        load_transformer(tmp_path / "empty.pt", lab_format / "transformer_tiny.yml")
    (tmp_path / "binary.yml").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ValueError, match="binary.yml: not a text file"):
        load_transformer(lab_format / "transformer_tiny.pt", tmp_path / "binary.yml")
    (tmp_path / "list.yml").write_text("- dim: 64\n")
    with pytest.raises(ValueError, match="list.yml: expected a mapping"):
        load_transformer(lab_format / "transformer_tiny.pt", tmp_path / "list.yml")


def test_load_maskgit_from_files_and_bundled(lab_format):
    """Both stages from the course's files; a part left as None is the bundled one; the errors
    name the parameters."""
    mg = load_maskgit(lab_format / "vqgan_tiny.yml", lab_format / "vqgan_tiny.pt",
                      lab_format / "transformer_tiny.yml", lab_format / "transformer_tiny.pt")
    assert mg.mask_token_id == 64 and not mg.transformer.training
    with pytest.raises(ValueError, match="vqgan_config and vqgan_weights"):
        load_maskgit(vqgan_config=lab_format / "vqgan_tiny.yml")
    with pytest.raises(ValueError, match="transformer_config needs transformer_weights"):
        load_maskgit(transformer_config=lab_format / "transformer_tiny.yml")
    bundled = load_bundled_maskgit()
    assert bundled.mask_token_id == bundled.transformer.config.num_codebook_vectors
    assert bundled.normalization is not None                    # the tokenizer's, read from its yml
