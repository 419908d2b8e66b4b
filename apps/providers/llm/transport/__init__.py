"""Talking to providers: the connection pools and the HTTP/1.1 client."""
