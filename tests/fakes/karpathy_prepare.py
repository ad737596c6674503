"""The public names of karpathy/autoresearch's prepare.py (read-only there), bodies elided: the metric guard
reads which names a `from prepare import *` brings in. Never run."""

import os

MAX_SEQ_LEN = 2048
TIME_BUDGET = 300
EVAL_TOKENS = 40 * 524288
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "autoresearch")
VOCAB_SIZE = 8192


class Tokenizer:
    @classmethod
    def from_directory(cls, tokenizer_dir=CACHE_DIR):
        return cls()

    def get_vocab_size(self):
        return VOCAB_SIZE


def make_dataloader(tokenizer, B, T, split, buffer_size=1000):
    raise NotImplementedError


def evaluate_bpb(model, tokenizer, batch_size):
    raise NotImplementedError
