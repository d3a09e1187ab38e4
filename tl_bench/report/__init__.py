"""The read side: what the studies wrote to MLflow, as leaderboards, files, dashboards and the UI."""
