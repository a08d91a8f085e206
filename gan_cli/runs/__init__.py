"""A run's folder: checkpoints (:mod:`.checkpoint`), the one-writer lock (:mod:`.lock`), the line-per-event
records ``scalars.jsonl`` / ``metrics.jsonl`` (:mod:`.records`), reading runs and writing tables
(:mod:`.results`), and the commands and paths the tool prints about them (:mod:`.hints`)."""
