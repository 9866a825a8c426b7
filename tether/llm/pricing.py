"""Cost of a call from the configured price table."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .config import Price

__all__ = ["cost"]

log = logging.getLogger("tether.llm")
_warned: set[str] = set()


def cost(
    prices: Mapping[str, Price], provider: str, model: str, input_tokens: int, output_tokens: int
) -> float:
    """US dollars for the tokens, priced by ``provider:model``, else by ``model``.

    A model with no price costs 0 (logged once per process): the tokens are still in
    the ledger, so the cost can be recomputed once a price is set.
    """
    price = prices.get(f"{provider}:{model}") or prices.get(model)
    if price is None:
        if f"{provider}:{model}" not in _warned:
            _warned.add(f"{provider}:{model}")
            log.warning("no price configured for %s:%s; its calls cost 0", provider, model)
        return 0.0
    return price.cost(input_tokens, output_tokens)
