"""Parts the ``stargan`` step adds to the paper's recipe, each behind its own option group: the
extra loss terms, the colour critic, differentiable augmentation, the generator's moving
average and the target labels drawn across datasets (what a step part is: ``protocol``).
Imports no torch until a part is imported."""
