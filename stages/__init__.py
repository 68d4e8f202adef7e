"""DVC stages of the Japanese text-classification pipeline (one module per stage)."""
