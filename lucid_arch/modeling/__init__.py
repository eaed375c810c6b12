"""The network: a validated config resolved into stage specs, and the specs into modules.

    spec.py          ModelConfig -> ModelSpec/StageSpec: every stage's shapes, no torch
    registry.py      config vocabulary -> module classes (the builder's only choices; no _target_)
    layers/          PatchEmbed, SpatialReductionAttention, Mlp, Block, Stage, pooling
    model.py         PyramidVisionTransformer, assembled from a ModelSpec
    features.py      FeatureInfo: a backbone's maps as timm describes them
    builder.py       the one path from any config form to a built model (create_model, build_model)
    memory_check.py  refuse a build whose weights exceed the device's free memory
    lucid_args.py    lucid's documented keyword arguments -> schema fields; the lucid-style repr

Modules know nothing of Hydra: only the builder reads configs, through :mod:`lucid_arch.config`.
"""
