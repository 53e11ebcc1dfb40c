"""qwen25/chat_template.jinja is Qwen2.5-Instruct's published chat template, and renders tool calls as Qwen documents.

The expected texts are published ones, never our own output (tests/fixtures/qwen2.5-tool-calling/README.md names
each source): the template as llama.cpp and the Berkeley Function-Calling Leaderboard copied it from
Qwen/Qwen2.5-7B-Instruct's tokenizer_config.json (and as installed TRL ships it), and the rendering of the
temperature example from Qwen's function-calling documentation (QwenLM/Qwen2.5 docs/source/framework/
function_call.md, section "Qwen2.5 Function Calling Templates").
"""

import json
from pathlib import Path

import pytest

from qwen25.tokenizer import CHAT_TEMPLATE, build_tokenizer

FIXTURES = Path(__file__).parents[1] / "fixtures" / "qwen2.5-tool-calling"
OURS = Path(__file__).parents[2] / "qwen25" / "chat_template.jinja"

# The documented example (function_call.md, "Preparation Code"): tools in OpenAI form, key order as published.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_temperature",
            "description": "Get current temperature at a location.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": 'The location to get the temperature for, in the format "City, State, Country".',  # noqa: E501
                    },
                    "unit": {
                        "type": "string",
                        "enum": ["celsius", "fahrenheit"],
                        "description": 'The unit to return the temperature in. Defaults to "celsius".',
                    },
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_temperature_date",
            "description": "Get temperature at a location and date.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": 'The location to get the temperature for, in the format "City, State, Country".',  # noqa: E501
                    },
                    "date": {
                        "type": "string",
                        "description": 'The date to get the temperature for, in the format "Year-Month-Day".',
                    },
                    "unit": {
                        "type": "string",
                        "enum": ["celsius", "fahrenheit"],
                        "description": 'The unit to return the temperature in. Defaults to "celsius".',
                    },
                },
                "required": ["location", "date"],
            },
        },
    },
]

# The documented conversation ("Hugging Face transformers" section): the first call in OpenAI form
# ({"type": "function", "function": {...}}), the second as a bare {"name", "arguments"} (the template accepts both),
# two consecutive tool results, then the final answer.
MESSAGES = [
    {
        "role": "system",
        "content": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\nCurrent Date: 2024-09-30",
    },
    {"role": "user", "content": "What's the temperature in San Francisco now? How about tomorrow?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "get_current_temperature", "arguments": {"location": "San Francisco, CA, USA"}},
            },
            {
                "name": "get_temperature_date",
                "arguments": {"location": "San Francisco, CA, USA", "date": "2024-10-01"},
            },
        ],
    },
    {
        "role": "tool",
        "name": "get_current_temperature",
        "content": '{"temperature": 26.1, "location": "San Francisco, CA, USA", "unit": "celsius"}',
    },
    {
        "role": "tool",
        "name": "get_temperature_date",
        "content": '{"temperature": 25.9, "location": "San Francisco, CA, USA", "date": "2024-10-01", "unit": "celsius"}',  # noqa: E501
    },
    {
        "role": "assistant",
        "content": "The current temperature in San Francisco is approximately 26.1°C. Tomorrow, on "
        "October 1, 2024, the temperature is expected to be around 25.9°C.",
    },
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(["What's the temperature in San Francisco now?"] * 20, vocab_size=300)


def published_rendering() -> str:
    return (FIXTURES / "function_call_rendering.txt").read_text(encoding="utf-8")


def test_our_template_is_the_published_template_byte_for_byte():
    published = (FIXTURES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_bytes()
    assert OURS.read_bytes() == published
    assert CHAT_TEMPLATE == published.decode("utf-8")


def test_published_copies_agree():
    """Two independent copies of tokenizer_config.json's template, and TRL's (checked by its CI against the Hub)."""
    llama_cpp = (FIXTURES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
    bfcl = json.loads((FIXTURES / "tokenizer_config.chat_template.json").read_text(encoding="utf-8"))
    assert bfcl["chat_template"] == llama_cpp
    trl_templates = pytest.importorskip("trl.chat_template_utils")
    assert trl_templates.qwen2_5_chat_template == llama_cpp


def test_tokenizer_uses_our_template(tokenizer):
    assert tokenizer.chat_template == CHAT_TEMPLATE


def test_documented_tool_conversation_renders_byte_for_byte(tokenizer):
    text = tokenizer.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False)
    assert text == published_rendering() + "\n"


def test_documented_tool_conversation_with_generation_prompt(tokenizer):
    text = tokenizer.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert text == published_rendering() + "\n<|im_start|>assistant\n"


def test_documented_prompt_before_the_final_answer(tokenizer):
    """The document's second model call: the messages up to the tool results, with the generation prompt, are the
    published text up to the last assistant header."""
    text = tokenizer.apply_chat_template(MESSAGES[:-1], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    published = published_rendering()
    header = "<|im_start|>assistant\n"
    assert text == published[: published.rindex(header) + len(header)]


def test_tool_call_tokens_are_single_special_tokens(tokenizer):
    ids = tokenizer.encode("<tool_call>\n{}\n</tool_call>", add_special_tokens=False)
    assert ids[0] == tokenizer.convert_tokens_to_ids("<tool_call>")
    assert ids[-1] == tokenizer.convert_tokens_to_ids("</tool_call>")
