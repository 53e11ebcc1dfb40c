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


def _text(seed: int, words: int) -> str:
    import random

    rng = random.Random(seed)
    vocab = ["the", "answer", "is", "12", "3.5", "apples", "\n", "x^2", "中文", "émigré", "   ", "42!", "λ", "(a+b)"]
    return " ".join(rng.choice(vocab) for _ in range(words))


@pytest.mark.parametrize("case", ["long-response", "long-plain-prompt", "long-chat-prompt", "both-long", "short"])
def test_encode_cuts_before_tokenizing_and_keeps_the_same_last_tokens(rm_scorer, case):
    """Issue 20: a 10 MB response was tokenized whole before being cut to max_length; `encode` now tokenizes a
    window of the end, and its ids are exactly the last max_length ids of the whole pair."""
    from reward.model_scorer import RewardModelScorer

    scorer = RewardModelScorer(rm_scorer.model, rm_scorer.tokenizer, max_length=64)
    long_text, short_text = _text(1, 3000), _text(2, 12)
    history = [{"role": "user", "content": _text(3, 800)}, {"role": "assistant", "content": _text(4, 900)},
               {"role": "user", "content": _text(5, 700)}]  # fmt: skip
    prompt, response = {
        "long-response": (PROMPT, long_text),
        "long-plain-prompt": (long_text, short_text),
        "long-chat-prompt": (history, short_text),
        "both-long": (history, long_text),
        "short": (PROMPT, short_text),
    }[case]
    whole = encode_pair(scorer.tokenizer, prompt, response)
    assert scorer.encode(prompt, response) == whole[-64:]
    assert len(whole) > 64 or case == "short"
