"""Planning: which tags the policy keeps, and the copy specs for a discovered package."""
