"""The networks of the pose-to-person GAN (pix2pixHD-based, as the paper), their profiles, losses and VGG19.

Only the profiles are imported here: they are plain dataclasses, and `edn --help` and the light verbs should not
pay for importing torch. Import the networks from their modules (`models.generator`, `models.discriminator`,
`models.face`, `models.losses`, `models.vgg`).
"""

from .config import PROFILES, ModelConfig, default_face_size, get_profile

__all__ = ["PROFILES", "ModelConfig", "default_face_size", "get_profile"]
