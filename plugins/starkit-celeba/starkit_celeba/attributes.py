"""CelebA's attributes and how starkit groups them."""

from __future__ import annotations

from starkit.spec import AttributeGroup

#: The 40 attributes of ``list_attr_celeba.txt``, with their official names, in file order.
ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

#: Hair colours are mutually exclusive targets ("make the hair blond"), so they form one
#: one-hot group; Gray_Hair joins it whenever it is selected.
HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")

GROUPS: tuple[AttributeGroup, ...] = (
    AttributeGroup("hair", "onehot", HAIR_COLOURS),
    AttributeGroup("attributes", "binary", tuple(a for a in ATTRIBUTES if a not in HAIR_COLOURS)),
)

#: The five attributes of the StarGAN paper's CelebA experiments, in its order.
DEFAULT_ATTRIBUTES: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
