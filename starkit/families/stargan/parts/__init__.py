"""Parts the ``stargan`` step adds to the paper's recipe, each behind its own option group: the
colour critic, differentiable augmentation, the generator's moving average and the target
labels drawn across datasets. Imports no torch until a part is imported."""
