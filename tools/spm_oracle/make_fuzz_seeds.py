#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/sentencepiece_fuzz.cpp: tiny SentencePiece models trained on a
few hand-written sentences (nothing from ../shared), one per model type and option the library's
loader and normalizer branch on. Needs Debian's python3-sentencepiece (it ships the trainer).

usage: python3 tools/spm_oracle/make_fuzz_seeds.py [OUT_DIR]   (default fuzz/corpus/sentencepiece)
"""
import os
import sys
import tempfile

import sentencepiece as spm

TEXT = """The quick brown fox jumps over the lazy dog.
A small cat sat on the warm mat and looked at the rain.
Tokenizers cut text into pieces; models read the pieces as numbers.
Numbers like 123, 4567 and 89 are split digit by digit sometimes.
  Leading spaces,   runs of spaces, and trailing spaces  
Tabs\tand\tnew lines are whitespace too.
Ünïcödé: café, naïve, Straße, 東京, 😀 👍🏽, العربية, עברית.
Full-width ＡＢＣ and ligatures ﬁ ﬂ are normalized by NFKC.
"""

# A two-rule normalization table (NFKC-like): small enough for a seed (the built-in nmt_nfkc
# table alone is ~240 KB), and it still builds a precompiled charsmap (a Darts trie).
RULES = "FF21\t41\nFB01\t66 69\n"

MODELS = {
    "bpe": dict(model_type="bpe", vocab_size=100),
    "unigram": dict(model_type="unigram", vocab_size=100),
    "char": dict(model_type="char", vocab_size=100),
    "word": dict(model_type="word", vocab_size=40),
    "bpe_byte_fallback": dict(model_type="bpe", vocab_size=400, byte_fallback=True),
    "unigram_user_defined": dict(model_type="unigram", vocab_size=100,
                                 user_defined_symbols=["[gMASK]", "sop", "<|user|>"],
                                 control_symbols=["<pad>", "[MASK]"]),
    "bpe_no_dummy_prefix": dict(model_type="bpe", vocab_size=100, add_dummy_prefix=False,
                                remove_extra_whitespaces=False),
    "unigram_keep_whitespace": dict(model_type="unigram", vocab_size=100,
                                    remove_extra_whitespaces=False, split_digits=True),
    "bpe_whitespace_suffix": dict(model_type="bpe", vocab_size=100, treat_whitespace_as_suffix=True),
    "unigram_rules": dict(model_type="unigram", vocab_size=100, normalization_rule_tsv="RULES"),
    "bpe_self_test": dict(model_type="bpe", vocab_size=100, self_test_sample_size=3),
    "unigram_no_bos_eos": dict(model_type="unigram", vocab_size=100, bos_id=-1, eos_id=-1,
                               unk_id=2, pad_id=0),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/sentencepiece"
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write(TEXT * 3)
        rules = os.path.join(tmp, "rules.tsv")
        with open(rules, "w") as f:
            f.write(RULES)
        for name, opts in MODELS.items():
            opts = dict(opts)
            if opts.get("normalization_rule_tsv") == "RULES":
                opts["normalization_rule_tsv"] = rules
            else:
                opts.setdefault("normalization_rule_name", "identity")
            prefix = os.path.join(tmp, name)
            spm.SentencePieceTrainer.train(input=text, model_prefix=prefix, hard_vocab_limit=False,
                                           character_coverage=1.0, minloglevel=2, **opts)
            with open(prefix + ".model", "rb") as f:
                data = f.read()
            with open(os.path.join(out, name + ".model"), "wb") as f:
                f.write(data)
            print(f"{name}.model: {len(data)} bytes")


if __name__ == "__main__":
    main()
