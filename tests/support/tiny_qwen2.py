"""A tiny random Hugging Face Qwen2 model and a tokenizer trained here, for ``--model`` and the export: no download.

The sizes are the CPU rehearsal's (:data:`nemo_resume.smoke.rehearsal.TINY`: 2 layers, hidden 64, FFN 128, 4 heads,
2 query groups, 128 ids). Every RMSNorm weight is random: Hugging Face initialises them to 1, which would hide a
converter that drops them.

    python -m tests.support.tiny_qwen2 OUT_DIR [--tied]
"""

from __future__ import annotations

import argparse
from pathlib import Path

CORPUS = ("the quick brown fox jumps over the lazy dog", "hello world this is a tiny qwen test",
          "question answer context nemo lora adapter export")
VOCAB = 128


def write_tiny_qwen2(out: Path, *, tied: bool = False, seed: int = 0) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a WordLevel tokenizer (``tokenizer.json``) into ``out``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainer=trainers.WordLevelTrainer(
        vocab_size=VOCAB, special_tokens=["<unk>", "<pad>", "<s>", "</s>"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(out)
    torch.manual_seed(seed)
    config = Qwen2Config(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=256,
                         tie_word_embeddings=tied, bos_token_id=2, eos_token_id=3, pad_token_id=1)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn_like(p))
    model.save_pretrained(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.support.tiny_qwen2")
    parser.add_argument("out", type=Path)
    parser.add_argument("--tied", action="store_true")
    args = parser.parse_args()
    print(write_tiny_qwen2(args.out, tied=args.tied))
