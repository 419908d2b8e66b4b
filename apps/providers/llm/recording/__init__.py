"""Storing every call: the buffered recorder and the records it writes."""
