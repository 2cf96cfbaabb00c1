"""The `elmo` command line."""
