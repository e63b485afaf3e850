"""The job engine without Blender: the job state machine, worker threads (the runner) and the
journal on disk."""
