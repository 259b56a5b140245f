# peer tests
