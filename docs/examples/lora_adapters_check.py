"""Each LoRA run's adapter loaded by plain PEFT on its base checkpoint vs the merged checkpoint the stage wrote.

Run after the LoRA commands of docs/lora.md (runs/lora/{dpo,reward,grpo}); prints the table there.
"""

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

runs = [("dpo", "runs/tiny/sft", AutoModelForCausalLM, {}),
        ("reward", "runs/tiny/sft", AutoModelForSequenceClassification, {"num_labels": 1}),
        ("grpo", "runs/tiny/dpo", AutoModelForCausalLM, {})]
tok = AutoTokenizer.from_pretrained("runs/tiny/sft")
ids = tok.apply_chat_template([{"role": "user", "content": "Sam has 12 apples and buys 7 more. How many?"}],
                              add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
for stage, base_dir, cls, kw in runs:
    torch.manual_seed(0)
    base = cls.from_pretrained(base_dir, attn_implementation="sdpa", **kw).eval()
    with torch.no_grad():
        b = base(input_ids=ids).logits
        p = PeftModel.from_pretrained(base, f"runs/lora/{stage}/adapter").eval()(input_ids=ids).logits
        m = cls.from_pretrained(f"runs/lora/{stage}", attn_implementation="sdpa").eval()(input_ids=ids).logits
    n = sum(t.numel() for t in load_file(f"runs/lora/{stage}/adapter/adapter_model.safetensors").values())
    print(f"| {stage} | {base_dir} | {n:,} | {(p - m).abs().max().item():.2e} | {(p - b).abs().max().item():.3f} |")
