"""Running cases: the runner, worker processes, memory probe, machine facts, scale contexts."""
