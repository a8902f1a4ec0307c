"""CT-RATE-VQA training and evaluation (SFT -> GRPO -> evaluation)."""
