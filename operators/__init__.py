"""Operators: gather context, call the engine, report one clear line."""

from typing import Literal

# What an operator's execute/invoke/modal returns: the stubs' `OperatorReturnItems`, spelt out
# (`bpy.stub_internal` exists only in the stubs).
Result = set[Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]]
