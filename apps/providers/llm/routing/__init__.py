"""Choosing a deployment: the router, its shared and local state, the circuit breakers."""
