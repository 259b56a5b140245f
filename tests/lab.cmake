# lab tests
