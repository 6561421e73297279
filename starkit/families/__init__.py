"""Model families shipped with starkit, each behind the same seam a plugin family uses
(:mod:`starkit.model_family`, :mod:`starkit.training.step`, :mod:`starkit.inference`)."""
