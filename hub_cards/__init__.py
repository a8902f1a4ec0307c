"""Dataset cards, model cards, evaluation-result files and publishing."""
