"""Model inputs, the on-disk patch cache, the training loader and batch augmentation.

- :mod:`autoice.data.inputs`: scene -> (C, h, w) inputs and (3, h, w) labels at the preset's resolution;
- :mod:`autoice.data.cache`: scenes -> memory-mapped ``.npy`` arrays keyed by scene and config;
- :mod:`autoice.data.loader`: patches sampled from the cache, fed by DataLoader workers;
- :mod:`autoice.data.transforms`: flips, rotations, rescale and CutMix on batched tensors.

Submodules are imported on use (torch is only needed for the loader and transforms).
"""
