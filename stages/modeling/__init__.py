"""Models: resolving the base model (builtin, local, hub), the builtin Japanese BERT, fine-tuning with the
Trainer (checkpoints, CPU speed-ups), the embedding encoder and its cache, and batched inference.
A new model source, training option or inference path goes here."""
