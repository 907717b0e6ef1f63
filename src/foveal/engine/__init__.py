"""The run engine that trains every task, and the hooks a task gives it (see docs/architecture.md)."""

from foveal.engine.plugin import RunData, TaskPlugin

__all__ = ["RunData", "TaskPlugin"]
