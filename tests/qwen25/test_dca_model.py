"""Long context on a whole model: DCA on the micro model (same logits as plain attention within a chunk, KV-cache
decoding equal to full recomputation past it, saved and reloaded with the checkpoint), the long presets (YaRN + DCA
through transformers' own rope_scaling) and the long-context SFT configs (parse only: small scale)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from qwen25.attention import registration
from qwen25.attention.dca import CONFIG_KEY, DualChunkRotaryEmbedding
from qwen25.attention.registration import enable_dca
from qwen25.model import load_model, load_preset, make_config, preset_names

DCA = {"chunk_size": 48, "local_size": 8}  # chunk_len 40
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def reference_backend(monkeypatch):
    monkeypatch.setattr(registration, "BACKEND", "reference")


@pytest.fixture(scope="module")
def models(micro_base):
    plain = load_model(micro_base).eval()
    dca = load_model(micro_base, dca=DCA).eval()
    assert isinstance(dca.model.rotary_emb, DualChunkRotaryEmbedding)
    assert not isinstance(plain.model.rotary_emb, DualChunkRotaryEmbedding)
    return plain, dca


def _ids(n: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randint(5, 300, (batch, n), generator=torch.Generator().manual_seed(seed))


def test_within_chunk_len_logits_identical(models):
    plain, dca = models
    ids = _ids(40, batch=2)
    mask = torch.ones_like(ids)
    mask[1, :7] = 0  # left padding in the second row
    with torch.no_grad():
        a = plain(input_ids=ids, attention_mask=mask).logits
        b = dca(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(a, b)


def test_up_to_chunk_size_logits_equal(models):
    """chunk_len < seq <= chunk_size runs the DCA path, whose distances are all the true ones."""
    plain, dca = models
    ids = _ids(47)
    with torch.no_grad():
        a = plain(input_ids=ids).logits
        b = dca(input_ids=ids).logits
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_beyond_chunk_size_differs_and_decoding_matches_recompute(models):
    """Past chunk_size DCA changes attention; cached decoding gives what a full DCA forward gives."""
    plain, dca = models
    ids = _ids(70, seed=1)
    with torch.no_grad():
        full = dca(input_ids=ids).logits
        assert (full - plain(input_ids=ids).logits).abs().max() > 1e-3
        out = dca(input_ids=ids[:, :60], use_cache=True)
        cache = out.past_key_values
        steps = [out.logits[:, -1]]
        for t in range(60, 70):
            out = dca(input_ids=ids[:, t : t + 1], past_key_values=cache, use_cache=True)
            steps.append(out.logits[:, -1])
    torch.testing.assert_close(torch.stack(steps[:-1], 1), full[:, 59:69], atol=1e-4, rtol=1e-4)


def test_generate_past_chunk_size_left_padded(models):
    """Greedy generation of a left-padded batch past chunk_size equals each row generated alone."""
    _, dca = models
    rows = [_ids(52, seed=2)[0], _ids(45, seed=3)[0]]
    ids = torch.zeros(2, 52, dtype=torch.long)
    mask = torch.zeros(2, 52, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, 52 - len(r) :], mask[i, 52 - len(r) :] = r, 1
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        batched = dca.generate(input_ids=ids, attention_mask=mask, **kw)[:, 52:]
        alone = [dca.generate(input_ids=r[None], **kw)[0, len(r) :] for r in rows]
    for i in range(2):
        assert torch.equal(batched[i], alone[i])


def test_dca_saved_with_checkpoint(micro_base, tmp_path):
    model = load_model(micro_base)
    enable_dca(model, DCA)
    model.save_pretrained(tmp_path)
    saved = __import__("json").loads((tmp_path / "config.json").read_text())
    assert saved[CONFIG_KEY] == DCA
    again = load_model(tmp_path)
    assert isinstance(again.model.rotary_emb, DualChunkRotaryEmbedding)
    assert again.model.layers[0].self_attn.dual_chunk.config.chunk_len == 40
    off = load_model(tmp_path, dca=False)
    assert not hasattr(off.model.layers[0].self_attn, "dual_chunk") and not hasattr(off.config, CONFIG_KEY)


def test_dca_refused_for_other_attention_and_bad_block(micro_base):
    with pytest.raises(ValueError, match="local_size"):
        load_model(micro_base, dca={"chunk_size": 48})
    with pytest.raises(ValueError, match="exceeds the trained length"):
        load_model(micro_base, dca={"chunk_size": 4096, "local_size": 8})  # micro model: 512 positions
    eager = load_model(micro_base, attn_implementation="eager")
    with pytest.raises(ValueError, match="qwen25"):
        enable_dca(eager, DCA)


def test_every_preset_loads_and_long_presets_extend_their_size():
    for name in preset_names():
        load_preset(name)
    for size in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b"):
        base, long = load_preset(f"qwen2.5-{size}"), load_preset(f"qwen2.5-{size}-long")
        assert {k: long[k] for k in base if k != "max_position_embeddings"} == {
            k: v for k, v in base.items() if k != "max_position_embeddings"
        }
        assert long["rope_scaling"] == {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
        assert long["max_position_embeddings"] == 131072 == 4 * 32768
        assert long[CONFIG_KEY]["chunk_size"] == 32768


def test_long_preset_uses_transformers_yarn():
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

    config = make_config(load_preset("qwen2.5-7b-long"))
    rotary = Qwen2RotaryEmbedding(config)
    assert rotary.rope_type == "yarn"
    assert rotary.attention_scaling == pytest.approx(0.1 * torch.log(torch.tensor(4.0)).item() + 1.0)  # YaRN mscale
    assert getattr(config, CONFIG_KEY) == {
        "chunk_size": 32768, "local_size": 1024, "original_max_position_embeddings": 32768
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: tiny\nrope_scaling: {type: yarn, factor: 4.0}\n", "needs original_max_position_embeddings"),
        ("base: tiny\ndual_chunk_attention_config: {chunk_size: 100, local_size: 60}\n", "local_size"),
        ("base: tiny\nrope_scaling: 4\n", "rope_scaling must be a mapping"),
    ],
)
def test_bad_long_preset_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_preset(path)


@pytest.mark.parametrize("name", ["qwen2.5-7b-long", "qwen2.5-turbo-262k"])
def test_long_sft_configs_parse(name):
    from sft.config import SFTStageConfig
    from stagekit.config import parse_config

    path = ROOT / "configs" / "sft" / f"{name}.yaml"
    cfg = parse_config(SFTStageConfig, ["--config", str(path), "--bf16", "false", "--use_cpu", "true"])
    values = yaml.safe_load(path.read_text())
    assert cfg.max_length == values["max_length"] == {"qwen2.5-7b-long": 32768, "qwen2.5-turbo-262k": 262144}[name]
    assert cfg.packing and cfg.fused_linear_ce and cfg.assistant_only_loss
    assert cfg.gradient_checkpointing or cfg.activation_checkpointing
    assert cfg.learning_rate == 7e-6 and cfg.weight_decay == 0.1 and cfg.max_grad_norm == 1.0
