"""The history store, timelines, evaluation."""
