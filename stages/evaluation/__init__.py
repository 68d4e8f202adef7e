"""Scoring and reporting: metrics, baselines, plots, the Markdown report and the model card.
A new metric goes in metrics.py; a new baseline in baselines.py; a new chart in plots.py."""
