"""Tiny random-initialised models of the real architectures, saved like real checkpoints.

Used by the pipeline demo (``python -m demo.pipeline_demo``), the tests and ``bench/``.
Every model is saved to a folder (``save_pretrained``) and then loaded through the
pipeline's own backends exactly as a user's download would be. Their weights are random:
they show the machinery (loading, batching, boxes, masks, vectors), never model quality.
"""

from __future__ import annotations

from pathlib import Path

# bert-base-uncased puts [PAD] at 0, [UNK] at 100, [CLS]/[SEP]/[MASK] at 101-103, "." at
# 1012 and "?" at 1029; Grounding DINO's text masks rely on those ids, so the tiny
# vocabulary keeps them where they are.
BERT_FIXED_IDS = {
    0: "[PAD]",
    100: "[UNK]",
    101: "[CLS]",
    102: "[SEP]",
    103: "[MASK]",
    1012: ".",
    1029: "?",
}
PHRASE_WORDS = [
    "a",
    "red",
    "square",
    "blue",
    "sky",
    "dark",
    "heavy",
    "clouds",
    "lone",
    "fisherman",
    "stormy",
    "beach",
    "at",
    "dusk",
    "the",
    "green",
    "grass",
    "calm",
    "sea",
    "old",
    "man",
    "with",
    "an",
    "umbrella",
    "bright",
    "sun",
    "over",
    "hills",
]


def write_bert_vocab(path: Path, words: tuple[str, ...] = PHRASE_WORDS, *, size: int = 1100) -> Path:
    """A WordPiece vocabulary of ``size`` entries with BERT's special-token ids and ``words`` in free slots."""
    vocab = [f"[unused{i}]" for i in range(size)]
    for i, token in BERT_FIXED_IDS.items():
        vocab[i] = token
    free = [i for i in range(size) if i not in BERT_FIXED_IDS]
    for slot, word in zip(free[200:], dict.fromkeys(words)):
        vocab[slot] = word
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return path


def build_tiny_grounding_dino(folder: Path, *, max_text_len: int = 24, seed: int = 0) -> Path:
    """A ~0.2M-parameter Grounding DINO (tiny Swin + tiny BERT) with its processor."""
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(str(write_bert_vocab(folder / "vocab.txt")))
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=7,
            out_indices=[2, 3, 4],
        ),
        text_config=BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        ),
        d_model=32,  # GroupNorm(32, d_model) needs a multiple of 32
        encoder_layers=1,
        decoder_layers=2,  # the shared bbox head ties layer 0 to the others
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=12,
        max_text_len=max_text_len,
    )
    model = GroundingDinoForObjectDetection(config)
    with torch.no_grad():  # smaller decoder states: token scores spread over (0, 1) instead of saturating
        model.model.decoder.layer_norm.weight.mul_(0.1)
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 96, "longest_edge": 128}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_sam_hf(folder: Path, *, seed: int = 0) -> Path:
    """A ~22K-parameter SAM (HF format) working at 64 px with its processor."""
    import torch
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    torch.manual_seed(seed)
    config = SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=8,
            output_channels=16,
            window_size=4,
            global_attn_indexes=[1],
            mlp_dim=32,
            num_pos_feats=8,  # half the prompt embedding size
        ),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4
        ),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=16,
            mlp_dim=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            iou_head_hidden_dim=16,
        ),
    )
    processor = SamProcessor(
        SamImageProcessor(
            size={"longest_edge": 64},
            pad_size={"height": 64, "width": 64},
            mask_size={"longest_edge": 16},
            mask_pad_size={"height": 16, "width": 16},
        )
    )
    SamModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def write_des_head(
    folder: Path,
    in_features: int,
    *,
    out_features: int = 1024,
    fmt: str = "safetensors",
    seed: int = 0,
) -> Path:
    """A ``torch.nn.Linear(in_features, out_features)`` saved as ``des_head.safetensors`` or ``des_head.pt``."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    head = torch.nn.Linear(in_features, out_features)
    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    if fmt == "safetensors":
        path = folder / "des_head.safetensors"
        save_file(state, str(path))
    else:
        path = folder / "des_head.pt"
        torch.save(state, path)
    return path


def build_tiny_des_vit(folder: Path, *, seed: int = 0) -> Path:
    """A tiny ViT backbone (with its pooler) and a 16 -> 1024 DES head."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    write_des_head(folder, config.hidden_size, seed=seed)
    return folder


def build_tiny_sentence_embedder(folder: Path, *, seed: int = 0) -> Path:
    """A sentence-transformers folder (``modules.json``): a tiny BERT, mean pooling, L2 normalisation."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(seed)
    bert = folder / "bert"
    bert.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(str(write_bert_vocab(bert / "vocab.txt")))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    transformer = models.Transformer(str(bert), max_seq_length=32)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = models.Pooling(dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(str(folder))
    return folder
