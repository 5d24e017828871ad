"""The third-party start-up messages every NeMo import prints, silenced one by one unless ``--verbose``.

Each entry names the exact logger (or warning category and module) and the start of the message, so
nothing else is hidden: a new warning from the same library still shows. Measured on the pinned set
(constraints.txt) by importing ``nemo.collections.llm`` and ``nemo_run``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownNoise:
    """One message: ``logger`` is a logging logger name, or None for a ``warnings`` warning from ``module``."""

    text: str
    logger: str | None = None
    module: str | None = None
    category: type[Warning] = Warning
    why: str = ""


KNOWN_NOISE: tuple[KnownNoise, ...] = (
    KnownNoise("The pynvml package is deprecated", module="torch.cuda", category=FutureWarning,
               why="torch's own import of pynvml; nothing for a user to do"),
    KnownNoise("fused_indices_to_multihot has reached end of life", logger="megatron.core.utils",
               why="megatron-core's experimental-API notice at import"),
    KnownNoise("OneLogger: Setting error_handling_strategy", logger="nv_one_logger.api.config",
               why="NeMo's telemetry, disabled"),
    KnownNoise("No exporters were provided", logger="nv_one_logger.training_telemetry.api.training_telemetry_provider",
               why="NeMo's telemetry, disabled"),
    KnownNoise("WARNING: transformer_engine not installed", logger="nemo.collections.llm.gpt.model.megatron.hyena.hyena_mixer",
               why="the Hyena model, which no Qwen2.5 recipe uses"),
    KnownNoise("The deploy module could not be imported", logger="nemo_logger", why="NeMo's optional deploy extra"),
    KnownNoise("The evaluate module could not be imported", logger="nemo_logger", why="NeMo's optional evaluate extra"),
)


class _DropKnown(logging.Filter):
    def __init__(self, texts: tuple[str, ...]) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(t) for t in self.texts)


def silence_known_noise() -> None:
    """Install the filters for :data:`KNOWN_NOISE`; call before NeMo is imported. Idempotent."""
    by_logger: dict[str, tuple[str, ...]] = {}
    for n in KNOWN_NOISE:
        if n.logger is None:
            warnings.filterwarnings("ignore", message=n.text, category=n.category, module=n.module or "")
        else:
            by_logger[n.logger] = (*by_logger.get(n.logger, ()), n.text)
    for name, texts in by_logger.items():
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropKnown) for f in log.filters):
            log.addFilter(_DropKnown(texts))
