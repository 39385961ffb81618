"""The family-facing API: what a signed-in guardian may see of their own learners' records."""
