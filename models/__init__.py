"""Hand-written definitions of the classic CNNs, on minidl's own layers.

    from minidl.models import get_model, list_models
    model = get_model("lenet5")
"""
if __name__ != "minidl.models":
    raise ImportError("import minidl.models, not models: the folder is installed as minidl.models")

from minidl.models.registry import get_model, list_models, register_model  # noqa: E402

# Each family module registers its builders on import.
from minidl.models import (  # noqa: E402,F401
    alexnet,
    alphago,
    densenet,
    fractalnet,
    googlenet,
    lenet,
    nin,
    preact_resnet,
    resnet,
    resnext,
    senet,
    squeezenet,
    stochastic_depth,
    vgg,
    wide_resnet,
    xception,
    zfnet,
)

__all__ = ["get_model", "list_models", "register_model"]
