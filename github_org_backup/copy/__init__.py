"""Copying: the engine that executes copy specs, the blob transfer, and the verifier."""
