"""Search: trial objective, Optuna runner, records and run directories."""
