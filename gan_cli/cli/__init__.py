"""The commands: ``gan-train`` (:mod:`.train`), ``gan-eval`` (:mod:`.evaluate`) with its sweep summary
(:mod:`.sweep`), the Optuna study's value (:mod:`.search`) and what a job of a Hydra launcher sets up
(:mod:`.launch`)."""
