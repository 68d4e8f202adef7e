"""The user's data: reading CSV/TSV tables (encodings, separators), labels, cleaning and the stratified split,
preparing texts for MeCab, and tokenization into token ids. A new input format or split rule goes here."""
