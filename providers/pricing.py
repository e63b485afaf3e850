"""The price of a whole batch before anything is spent: each job's published price
(`Provider.price_per_task`) or, where there is none, the service's read-only quote.

Pure and bpy-free. Quotes may use the network, so `price_batch` runs on a worker thread for the
panel (the command line's `--dry-run` may block). Identical requests are quoted once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import CancelToken, Provider, TextureRequest

# Fields that differ per job but never change a price.
_NOT_PRICED = ("job_id", "file_stem", "out_dir", "mesh_path")


@dataclass
class BatchPrice:
    provider: str  # its label
    jobs: int  # jobs in the batch
    offline: bool = False  # made on this computer: nothing to pay
    total: float = 0.0  # the sum over the priced jobs
    priced: int = 0  # jobs with a price
    each: list[float | None] = field(default_factory=list)  # per job, None: unknown
    unit: str = "credits"
    available: float | None = None  # what the account has, when the service said
    notes: list[str] = field(default_factory=list)
    asked: int = 0  # quote requests made (0 when every price was published)


def _key(request: TextureRequest) -> str:
    data = {k: v for k, v in request.to_dict().items() if k not in _NOT_PRICED}
    return json.dumps(data, sort_keys=True, default=str)


def price_batch(provider: Provider, requests: Sequence[TextureRequest],
                cancel: CancelToken | None = None,
                progress: Callable[[int, int], None] | None = None) -> BatchPrice:
    """Price every request: a published price where there is one, else the quote."""
    out = BatchPrice(type(provider).label, len(requests), offline=type(provider).offline)
    if out.offline:
        out.each = [0.0] * len(requests)
        out.priced = len(requests)
        return out
    quoted: dict[str, dict[str, Any] | None] = {}
    for i, request in enumerate(requests):
        if cancel is not None and cancel.canceled:
            break
        answer = provider.price_per_task(request)
        if answer is None:
            key = _key(request)
            if key not in quoted:
                try:
                    quoted[key] = provider.quote(request, cancel)
                except Exception as exc:  # a price is a courtesy: never an error
                    quoted[key] = None
                    out.notes.append(f"no price: {provider.redact(str(exc))}")
                out.asked += 1
            answer = quoted[key]
        cost = answer.get("cost_credits") if answer else None
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            out.each.append(float(cost))
            out.total += float(cost)
            out.priced += 1
            assert answer is not None
            out.unit = str(answer.get("unit") or out.unit)
            if answer.get("available_credits") is not None:
                out.available = float(answer["available_credits"])
            note = answer.get("note")
            if note and note not in out.notes:
                out.notes.append(str(note))
        else:
            out.each.append(None)
        if progress is not None:
            progress(i + 1, len(requests))
    return out


def describe(price: BatchPrice) -> str:
    """One line for the panel and the command line."""
    n = price.jobs
    objects = f"{n} object{'s' if n != 1 else ''}"
    if n == 0:
        return "Nothing to price"
    if price.offline:
        return f"Free: {objects}, offline"
    if price.priced == 0:
        return f"No price from {price.provider} for {objects}"
    known = [c for c in price.each if c is not None]
    text = f"≈ {price.total:g} {price.unit} for {objects}"
    if price.priced < n:
        text = f"≈ {price.total:g} {price.unit} for {price.priced} of {objects} " \
               f"(no price for {n - price.priced})"
    elif n > 1 and len(set(known)) == 1:
        text += f" ({known[0]:g} each)"
    if price.available is not None:
        text += f"; {price.available:g} available"
        if price.available < price.total:
            text += " — not enough"
    return text
