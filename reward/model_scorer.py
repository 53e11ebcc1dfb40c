"""Reward-model scoring for the service: render (prompt, response) exactly as training did, one padded forward.

Training (TRL `RewardTrainer`) tokenizes `prompt + [assistant response]` with the chat template (plain strings:
`prompt + response + eos`), right-pads the batch and reads the logit of the last non-pad token, which
`AutoModelForSequenceClassification` selects from `config.pad_token_id`. `RewardModelScorer` does the same, so
a served score is the score the trainer's accuracy was measured on. Inputs longer than `max_length` keep their
last `max_length` tokens: the score is read at the end of the response, so that end must survive truncation.

A hostile or runaway input can be megabytes long. `encode` cuts the text to its last `8 * max_length` characters
(at a whitespace boundary, earlier prompt messages dropped first) before tokenizing, and checks that the cut text
still gives at least `max_length + 64` tokens, so the kept tokens are those of the whole text; when it does not
(very long tokens), the window grows 4x and it tokenizes again. The reward service renders and tokenizes each
item this way before the item joins a batch (`encode`), and the batch runs on token ids only (`score_ids`).
"""

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from qwen25.model import load_for_inference
from qwen25.tokenizer import load_tokenizer

Prompt = list[dict] | str  # chat messages (TRL conversational format) or plain text
ScoreInput = tuple[Prompt, str]  # (prompt, response)


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, response: str) -> list[int]:
    """Token ids of prompt followed by response, as TRL's RewardTrainer tokenizes a chosen/rejected sequence."""
    if isinstance(prompt, str):
        text = prompt + response
        if tokenizer.eos_token and not text.endswith(tokenizer.eos_token):
            text += tokenizer.eos_token
        return list(tokenizer(text=text)["input_ids"])
    messages = [*prompt, {"role": "assistant", "content": response}]
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


CHARS_PER_TOKEN = 8  # first window: 8 characters per kept token (a Qwen token averages about 4 in English)
_MARGIN_TOKENS = 64  # tokens beyond max_length the cut text must still give, so the cut is far from the kept part
_MESSAGE_CHARS = 16  # a message's template overhead (role markers), counted against the window


def _tail(text: str, chars: int) -> str:
    """The last `chars` characters of `text`, starting after a whitespace when one is near the cut."""
    if len(text) <= chars:
        return text
    tail = text[-chars:]
    for i, char in enumerate(tail[: min(chars // 10, 1000)]):
        if char.isspace():
            return tail[i + 1 :]
    return tail


def cut_pair(prompt: Prompt, response: str, chars: int) -> tuple[Prompt, str, bool]:
    """(prompt, response, cut): the pair reduced to about its last `chars` characters, and whether anything was
    dropped. The response is cut first (a response this long needs no prompt: `[]` or ""); then earlier messages."""
    if len(response) >= chars:
        return ([] if not isinstance(prompt, str) else ""), _tail(response, chars), True
    left = chars - len(response)
    if isinstance(prompt, str):
        return _tail(prompt, left), response, len(prompt) > left
    kept: list[dict] = []
    for message in reversed(prompt):
        content = message.get("content") or ""
        if len(content) + _MESSAGE_CHARS >= left:
            kept.append({**message, "content": _tail(content, max(left - _MESSAGE_CHARS, 1))})
            return kept[::-1], response, True
        kept.append(message)
        left -= len(content) + _MESSAGE_CHARS
    return prompt, response, False


def right_pad(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists -> (input_ids (B, L), attention_mask (B, L)), L = longest sequence."""
    length = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


class RewardModelScorer:
    """Callable scorer: list of (prompt, response) -> raw reward-model logits, one forward per call."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, max_length: int):
        if model.config.num_labels != 1:
            raise ValueError(f"a reward model has num_labels=1, this one has {model.config.num_labels}")
        if model.config.pad_token_id != tokenizer.pad_token_id:
            # The model finds the scored token by looking for pad ids; a mismatch would score the wrong token.
            raise ValueError(
                f"model config pad_token_id={model.config.pad_token_id} != tokenizer pad_token_id="
                f"{tokenizer.pad_token_id}"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, path: str, *, device: str = "auto", dtype: str = "auto", max_length: int = 2048):
        """Load a reward-model checkpoint directory (model + tokenizer) with this project's attention.

        device/dtype: as `stagekit.device` decides them ("auto": accelerate's device; fp32 on CPU, on GPU the
        checkpoint's 16-bit dtype or bf16)."""
        tokenizer = load_tokenizer(path)
        model = load_for_inference(path, task="sequence-classification", device=device, dtype=dtype)
        return cls(model, tokenizer, max_length=max_length)

    def encode(self, prompt: Prompt, response: str) -> list[int]:
        """The last `max_length` token ids of the pair, without tokenizing more than a window of its end (see the
        module docstring). Raises what the chat template or tokenizer raises on a malformed prompt."""
        chars = CHARS_PER_TOKEN * self.max_length
        while True:
            cut_prompt, cut_response, cut = cut_pair(prompt, response, chars)
            ids = encode_pair(self.tokenizer, cut_prompt, cut_response)
            if not cut or len(ids) >= self.max_length + _MARGIN_TOKENS:
                return ids[-self.max_length :]
            chars *= 4

    def __call__(self, pairs: Sequence[ScoreInput]) -> list[float]:
        return self.score_ids([self.encode(p, r) for p, r in pairs])

    def score_ids(self, sequences: Sequence[Sequence[int]]) -> list[float]:
        """Raw logits of already encoded sequences (`encode`), one padded forward."""
        input_ids, attention_mask = right_pad(sequences, self.tokenizer.pad_token_id)
        device = self.model.device
        with torch.inference_mode():
            logits = self.model(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False
            ).logits  # (B, 1)
        return logits[:, 0].float().cpu().tolist()
