"""The offline model provider: a local server speaking OpenAI, Anthropic and Gemini
wire formats, with scripted faults; used by the ``sim`` provider and by the tests."""

from .server import Call, Fault, SimServer

__all__ = ["Call", "Fault", "SimServer"]
