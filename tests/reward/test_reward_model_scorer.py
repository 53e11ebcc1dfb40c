"""RewardModelScorer: the served score is the trainer's score, whatever the batch around it."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification
from trl.data_utils import _tokenize

from reward.model_scorer import encode_pair, right_pad

PROMPT = [{"role": "user", "content": "Sam has 3 apples and gets 4 more. How many?"}]
RESPONSES = ["3 + 4 = 7. The answer is \\boxed{7}.", "8", "3 + 4 = 8. The answer is \\boxed{8}. " * 3]


def test_right_pad_values():
    input_ids, attention_mask = right_pad([[5, 6, 7], [8], [9, 10]], pad_token_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert attention_mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


def test_encoding_matches_reward_trainer_tokenization(rm_scorer):
    tokenizer = rm_scorer.tokenizer
    chosen = [{"role": "assistant", "content": RESPONSES[0]}]
    assert encode_pair(tokenizer, PROMPT, RESPONSES[0]) == _tokenize(tokenizer, PROMPT + chosen)["input_ids"]
    text_ids = encode_pair(tokenizer, "2 + 2 =", " 4")
    assert text_ids[-1] == tokenizer.eos_token_id  # RewardTrainer appends EOS to plain-text sequences


def test_batched_scores_equal_single_scores_and_plain_transformers(rm_scorer, trained_rm):
    pairs = [(PROMPT, r) for r in RESPONSES]
    batched = rm_scorer(pairs)
    single = [rm_scorer([pair])[0] for pair in pairs]
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(round(x, 6) for x in batched)) == 3  # different responses, different scores

    eager = AutoModelForSequenceClassification.from_pretrained(trained_rm[0], attn_implementation="eager").eval()
    for pair, score in zip(pairs, batched):
        ids = torch.tensor([encode_pair(rm_scorer.tokenizer, *pair)])
        with torch.no_grad():
            assert eager(input_ids=ids).logits.item() == pytest.approx(score, abs=1e-4)


def test_truncation_keeps_the_end(rm_scorer):
    ids = rm_scorer.encode(PROMPT, "x " * 400)
    assert len(ids) == rm_scorer.max_length == 256
    assert ids == encode_pair(rm_scorer.tokenizer, PROMPT, "x " * 400)[-256:]
