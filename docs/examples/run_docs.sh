#!/usr/bin/env bash
# Runs every command the docs show, in order, each alone on the machine; outputs under runs/examples/out/.
set -u
cd "$(dirname "$0")/../.."
export WANDB_MODE=offline TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
B=.venv/bin
O=runs/examples/out
mkdir -p $O
run() {  # run NAME CMD...: the command line and its output (stdout+stderr, progress bars stripped) into $O/NAME.txt
  local name=$1; shift
  echo "=== $name: $*" >&2
  "$@" > $O/$name.raw 2>&1
  local code=$?
  { echo "\$ $*"; sed -e 's/\r/\n/g' $O/$name.raw | grep -v -E "it/s\]|s/it\]|batch/s\]|s/batch\]|examples/s\]|^\s*$|Warning|warnings.warn|super\(\).__init__"; echo "(exit $code)"; } > $O/$name.txt
  echo "    exit $code" >&2
}
EX=docs/examples
run data_verified_small $B/qwenpost data build --config configs/data/verified_small.yaml
run sandbox_run $B/qwenpost sandbox run --language python $EX/solution.py
run verify $B/qwenpost verify --reference $EX/ref.json --response $EX/reply.txt
run data_mixture_small $B/python -m data_builders --config configs/data/mixture_small.yaml
run reward_eval_pairs $B/python -m reward eval --model runs/tiny/reward --eval_dataset_path runs/tiny/data/preference_eval --output_dir runs/examples/reward_eval
run reward_eval_bench $B/python -m reward eval --model runs/tiny/reward --reward_bench $EX/rb_sample.jsonl --output_dir runs/examples/reward_eval
# the service on the demo's reward model, scored by hand with curl
$B/python -m reward serve --config configs/reward/serve_tiny.yaml --model_path runs/tiny/reward --port 8765 > $O/serve.log 2>&1 &
SERVE=$!
for i in $(seq 1 120); do curl -s localhost:8765/healthz > /dev/null && break; sleep 1; done
{ echo '$ curl -s localhost:8765/v1/score -H '"'"'content-type: application/json'"'"' -d '"'"'{"items": [...]}'"'"; curl -s localhost:8765/v1/score -H 'content-type: application/json' -d '{"items": [{"prompt": [{"role": "user", "content": "Sam has 3 apples and gets 4 more. How many?"}], "response": "3 + 4 = 7. The answer is \\boxed{7}.", "reference": {"type": "math", "answer": "7"}}]}'; echo; } > $O/curl.txt
kill $SERVE; wait $SERVE 2>/dev/null
run sweep_dpo_beta $B/qwenpost sweep configs/sweeps/dpo_beta.yaml
run sweep_dpo_beta_again $B/qwenpost sweep configs/sweeps/dpo_beta.yaml
run sweep_bad $B/qwenpost sweep $EX/bad_sweep.yaml
run sweep_summaries grep -h -A4 '"runtime_s"' runs/sweeps/dpo_beta/beta=0.05/summary.json runs/sweeps/dpo_beta/beta=0.5/summary.json
run compare $B/qwenpost compare dpo_beta --metrics loss rewards/accuracies rewards/margins eval_loss eval_rewards/accuracies eval_rewards/margins
run eval_heldout $B/qwenpost eval --model runs/sweeps/dpo_beta/beta=0.5 --suite tiny_heldout --data runs/tiny/data/heldout --batch_size 32 --experiment dpo_beta
run eval_ifeval $B/qwenpost eval --model runs/sweeps/dpo_beta/beta=0.5 --suite ifeval --data $EX/ifeval_sample.jsonl --max_new_tokens 32 --out runs/examples/eval
run eval_gsm8k_nodata $B/qwenpost eval --model runs/sweeps/dpo_beta/beta=0.5 --suite gsm8k
echo done >&2
# benchmarks (each alone): the ones the docs quote
run bench_sandbox $B/python benchmarks/sandbox_throughput.py
run bench_verifiers $B/python benchmarks/verifier_throughput.py
run bench_data_builders $B/python benchmarks/data_areas.py --queries 200
run bench_data_builders_verified $B/python benchmarks/data_builders_verified.py
run bench_attention_cpu $B/python benchmarks/attention.py
run bench_reward_service $B/python benchmarks/reward_service.py
run bench_sft_throughput $B/python benchmarks/sft_throughput.py
run bench_grpo_rollout $B/python benchmarks/grpo_rollout.py --model runs/tiny/dpo
run bench_long_context_8k $B/python benchmarks/long_context.py --lengths 8192 --max_gib 6
run bench_memory_sft_4096 $B/python benchmarks/memory_32k.py --sft-step --tokens 4096
run bench_memory_fused_32k $B/python benchmarks/memory_32k.py --sft-step-child fused --tokens 32768
run bench_memory_full_8k $B/python benchmarks/memory_32k.py --sft-step-child model_loss --tokens 8192
echo benchmarks done >&2
