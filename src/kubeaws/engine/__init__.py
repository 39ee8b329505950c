"""The engine: dependency graph, planner and executor. Called by the public API (kubeaws.api)."""
