# schema tests
