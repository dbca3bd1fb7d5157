"""segbench: a small, readable toolkit for 2-D semantic segmentation (models, training, evaluation, benchmarks)."""
