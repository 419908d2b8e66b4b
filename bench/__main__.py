"""``python -m bench`` (``make bench``): every benchmark, one after the other."""

from . import gateway, websocket

if __name__ == "__main__":
    gateway.main([])
    websocket.main([])
