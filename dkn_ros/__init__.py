"""dkn_ros: sharper, denser depth from RGB-D cameras with Deformable Kernel Networks.

``Enhancer`` is imported lazily so that ``import dkn_ros.synthetic`` (or the ROS node's
message code) does not pay for importing torch.
"""

__version__ = "0.1.0"
__all__ = ["Enhancer", "__version__"]


def __getattr__(name: str):
    if name == "Enhancer":
        from dkn_ros.enhancer import Enhancer

        return Enhancer
    raise AttributeError(f"module 'dkn_ros' has no attribute {name!r}")
