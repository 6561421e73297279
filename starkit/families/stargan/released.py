"""What the reference implementation's released CelebA models were trained on (its
``solver.py`` defaults): shared by the weight import and its state-dict conversion."""

#: The attributes of the released models, in their label order (``selected_attrs``).
REFERENCE_ATTRIBUTES: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
#: CelebA attributes the reference treats as one one-hot group (``create_labels``).
HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
