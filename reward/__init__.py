"""Reward stage: a Bradley-Terry reward model (`python -m reward train`), its evaluation (`python -m reward eval`:
pairwise accuracy per category/criterion, Reward Bench) and the reward service (`python -m reward serve`) that GRPO
calls over HTTP. Launch commands: reward/__main__.py."""
