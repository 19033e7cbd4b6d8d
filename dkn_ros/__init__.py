"""dkn_ros: sharper, denser depth from RGB-D cameras with Deformable Kernel Networks."""

__version__ = "0.1.0"
