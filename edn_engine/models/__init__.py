"""The networks of the pose-to-person GAN (pix2pixHD-based, as the paper), their profiles, losses and VGG19."""

from .config import PROFILES, ModelConfig, default_face_size, get_profile
from .discriminator import build_discriminator, disc_input_channels
from .face import build_face_discriminator, build_face_generator, crop_faces, face_origins, paste_faces
from .generator import build_generator

__all__ = [
    "PROFILES", "ModelConfig", "default_face_size", "get_profile", "build_generator", "build_discriminator",
    "disc_input_channels", "build_face_generator", "build_face_discriminator", "face_origins", "crop_faces",
    "paste_faces",
]
