"""Provider-scoped links from a source system's learner identifier to a Kinfolio learner."""
