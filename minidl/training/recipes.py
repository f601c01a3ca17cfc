"""Default dataset, input size and hyper-parameters for each model family (its paper's recipe, scaled to CPU).

``recipe_for("resnet20")`` gives the CIFAR ResNet recipe of He et al. (2016), Section 4.2: SGD, lr 0.1,
momentum 0.9, weight decay 1e-4, batch 128, lr / 10 at 50% and 75% of training (32k and 48k of 64k
iterations, ~164 epochs). Every value can be overridden on the command line.

ImageNet recipes keep the paper's lr per image: batch 256 at lr 0.1 becomes batch 64 at lr 0.025 (the
linear scaling rule of Goyal et al., 2017), since batches of 256 224x224 images do not fit a CPU run.

Every model declares its recipe where it is registered, as timm registers each model with its default
config: ``@register_model(description, paper, recipe=CIFAR_RESNET)`` in the model's file, using the shared
recipes below or its own (AlphaGo's policy network: 48 x 19 x 19 inputs, 361 classes). Nothing is guessed
from a model's name or description: a model registered without a recipe cannot be trained by the command
(``recipe_for`` raises :class:`MissingRecipeError`, ``python -m minidl.train`` exits 2 saying so).
"""
from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Recipe:
    """How to train a model by default. ``schedule_options`` go to the schedule (see ``make_scheduler``);
    ``num_classes`` is the number of classes of ``--dataset synthetic`` (None: 10)."""

    dataset: str
    input_size: int
    channels: int = 3
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    schedule: str = "none"
    schedule_options: dict = field(default_factory=dict)
    source: str = ""
    num_classes: int = None

    def as_dict(self):
        return asdict(self)


# The paper's "divide by 10 at 50% and 75% of training" (ResNet CIFAR, DenseNet), as fractions of --epochs.
HALF_AND_THREE_QUARTERS = {"milestones": [0.5, 0.75], "gamma": 0.1}

MNIST_LENET = Recipe(
    "mnist", 32, channels=1, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=64, epochs=20, schedule="cosine",
    source="the paper's 20 passes, with SGD (lr 0.05, momentum 0.9, cosine) for its stochastic diagonal "
           "Levenberg-Marquardt: LeNet-5 reaches ~97.5% on the MNIST sample (with 2-pixel shifts)")
CIFAR_RESNET = Recipe(
    "cifar10", 32, lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=164, schedule="step",
    schedule_options=HALF_AND_THREE_QUARTERS,
    source="He et al. 2016, Sec. 4.2: lr 0.1, momentum 0.9, wd 1e-4, batch 128, lr/10 at 32k and 48k of 64k iterations")
CIFAR_WIDE = replace(
    CIFAR_RESNET, weight_decay=5e-4, epochs=200, schedule_options={"milestones": [0.3, 0.6, 0.8], "gamma": 0.2},
    source="Zagoruyko & Komodakis 2016: lr 0.1, wd 5e-4, lr x 0.2 at epochs 60, 120, 160 of 200")
CIFAR_DENSENET = replace(
    CIFAR_RESNET, batch_size=64, epochs=300,
    source="Huang et al. 2017: batch 64, 300 epochs, lr 0.1 / 10 at 50% and 75%, wd 1e-4")
CIFAR_VGG = replace(
    CIFAR_RESNET, lr=0.05, weight_decay=5e-4, epochs=160,
    source="the usual VGG-BN CIFAR recipe: lr 0.05, wd 5e-4, lr/10 at 50% and 75%")
IMAGENET_RESNET = Recipe(
    "imagefolder", 224, lr=0.025, momentum=0.9, weight_decay=1e-4, batch_size=64, epochs=90, schedule="step",
    schedule_options={"milestones": [1 / 3, 2 / 3], "gamma": 0.1},
    source="He et al. 2016: lr 0.1 at batch 256 (here 0.025 at 64), wd 1e-4, lr/10 at epochs 30 and 60 of 90")
IMAGENET_ALEXNET = Recipe(
    "imagefolder", 227, lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64, epochs=90, schedule="plateau",
    source="Krizhevsky et al. 2012: lr 0.01, momentum 0.9, wd 5e-4, lr/10 when the validation error stops improving")
IMAGENET_VGG = replace(
    IMAGENET_ALEXNET, input_size=224, epochs=74,
    source="Simonyan & Zisserman 2015: lr 0.01, momentum 0.9, wd 5e-4, lr/10 on plateaus, 74 epochs")
IMAGENET_GOOGLENET = Recipe(
    "imagefolder", 224, lr=0.01, momentum=0.9, weight_decay=2e-4, batch_size=32, epochs=90, schedule="step",
    schedule_options={"step_size": 8, "gamma": 0.96},
    source="Szegedy et al. 2015: momentum 0.9, lr decreased by 4% every 8 epochs")
IMAGENET_XCEPTION = Recipe(
    "imagefolder", 299, lr=0.045, momentum=0.9, weight_decay=1e-5, batch_size=32, epochs=90, schedule="step",
    schedule_options={"step_size": 2, "gamma": 0.94},
    source="Chollet 2017: lr 0.045, momentum 0.9, lr x 0.94 every 2 epochs, wd 1e-5")


def borrowed(recipe):
    """``recipe`` lent to a model whose paper gives no training recipe, saying so in its source."""
    return replace(recipe, source=f"no recipe of its own; borrowed: {recipe.source}")


class MissingRecipeError(LookupError):
    """A registered model that declares no recipe (``register_model(..., recipe=...)``)."""


def recipe_for(name):
    """The :class:`Recipe` registered with model ``name`` (a ``Recipe``, or a dict of its fields)."""
    from minidl.models import list_models  # models are the layer above: looked up when asked, never on import
    entry = list_models(with_descriptions=True).get(name)
    if entry is None:
        raise ValueError(f"recipe_for: unknown model {name!r}")
    if entry.recipe is None:
        raise MissingRecipeError(f"{name} was registered without a training recipe: declare one with "
                                 f"register_model(..., recipe=...) (see minidl.training.recipes)")
    return entry.recipe if isinstance(entry.recipe, Recipe) else Recipe(**entry.recipe)


def make_optimizer(name, params, lr, momentum=0.0, weight_decay=0.0):
    """``optim.SGD`` (with ``momentum``), ``optim.Adam`` or ``optim.AdamW`` by name."""
    from minidl import optim
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of: sgd, adam, adamw")


def make_scheduler(name, optimizer, epochs, options=None):
    """The lr schedule ``name`` over ``epochs`` epochs, or None for "none".

    step: ``options["step_size"]`` -> StepLR, else MultiStepLR at ``options["milestones"]`` (fractions of
    ``epochs``, default 50% and 75%); cosine: CosineAnnealingLR to 0 at ``epochs``; plateau:
    ReduceLROnPlateau on the validation loss, lr / 10 after ``options["patience"]`` (default 5) bad epochs.
    """
    from minidl.optim import lr_scheduler
    options = options or {}
    gamma = options.get("gamma", 0.1)
    if name == "none":
        return None
    if name == "step":
        if "step_size" in options:
            return lr_scheduler.StepLR(optimizer, step_size=int(options["step_size"]), gamma=gamma)
        fractions = options.get("milestones", HALF_AND_THREE_QUARTERS["milestones"])
        milestones = sorted({max(1, round(f * epochs)) for f in fractions})
        return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=options.get("factor", 0.1),
                                              patience=options.get("patience", 5))
    raise ValueError(f"unknown schedule {name!r}; choose one of: none, step, cosine, plateau")
