# dns tests
