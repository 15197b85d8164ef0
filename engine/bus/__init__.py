"""The event bus: one protocol, an in-process and a Redis Streams implementation."""

from __future__ import annotations

from engine.bus.memory import InProcessBus
from engine.bus.protocol import DEFAULT_MAXLEN, Bus, Message
from engine.settings import Settings

__all__ = ["DEFAULT_MAXLEN", "Bus", "InProcessBus", "Message", "make_bus"]


def make_bus(settings: Settings) -> Bus:
    """Redis Streams when ``IQTS_REDIS_URL`` is set, else the in-process bus."""
    if settings.redis_url is not None:
        from engine.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(
            settings.redis_url.get_secret_value(), maxlen=settings.bus_maxlen, topic_maxlen=settings.bus_maxlen_topics
        )
    return InProcessBus(maxlen=settings.bus_maxlen, topic_maxlen=settings.bus_maxlen_topics)
