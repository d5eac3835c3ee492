"""The workflow engine: triggers, the durable queue, the runner and its blocks (docs/engine.md)."""
