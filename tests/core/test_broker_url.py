"""Celery's broker is the same Redis database as the cache and the channel layer, also on a unix
socket (the embedded Redis), where kombu reads the database from ``virtual_host``."""

from __future__ import annotations

import redis
from kombu import Connection

from apps.core import embedded_redis
from orchestra.settings.base import _celery_broker_url


def test_a_socket_urls_database_is_the_brokers_too(tmp_path):
    path = embedded_redis.socket_path(tmp_path, "broker-url")
    server = embedded_redis.start(path)
    try:
        broker = _celery_broker_url(f"unix://{path}?db=15")
        with Connection(broker) as connection:
            connection.SimpleQueue("orchestra-broker-url").put({"hello": 1})
        assert redis.Redis(unix_socket_path=str(path), db=15).llen("orchestra-broker-url") == 1
        assert not redis.Redis(unix_socket_path=str(path), db=0).exists("orchestra-broker-url")
    finally:
        server.terminate()
        server.wait(10)


def test_other_urls_are_kept_as_they_are():
    assert _celery_broker_url("redis://127.0.0.1:6379/9") == "redis://127.0.0.1:6379/9"
    assert _celery_broker_url("unix:///tmp/r.sock") == "redis+socket:///tmp/r.sock"
