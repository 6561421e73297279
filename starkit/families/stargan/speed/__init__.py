"""How the ``stargan`` step is computed on a device: the performance switches (:mod:`.fast`)
and the convolution kernels they swap in (:mod:`.nnpack_convs`, :mod:`.gemm_convs`,
:mod:`.conv_swap`). None changes what is trained; their runtime keys live in
:mod:`starkit.training.config`. Imports no torch until a module is imported."""
