"""The model registry: ``get_model(name, **kwargs)`` and ``list_models()``.

Each builder registers itself with ``@register_model(description, paper)``; the description is one line,
the paper its source (authors, title, venue and year).
"""
_REGISTRY = {}


class ModelEntry:
    def __init__(self, name, builder, description, paper, recipe=None):
        self.name, self.builder, self.description, self.paper = name, builder, description, paper
        self.recipe = recipe

    def __repr__(self):
        return f"{self.name}: {self.description} ({self.paper})"


def register_model(description, paper, name=None, recipe=None):
    """Register a builder under its function name (or ``name``).

    ``recipe``: how the training command trains the model by default, declared with the model (as timm
    registers a default config): a dict of ``minidl.training.Recipe`` fields (dataset, input_size,
    channels, num_classes, lr, ...). Without one, ``minidl.training.recipe_for`` picks it by name.
    """
    def wrap(builder):
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"register_model: a model named {key!r} is already registered")
        _REGISTRY[key] = ModelEntry(key, builder, description, paper, recipe)
        return builder
    return wrap


def list_models(with_descriptions=False):
    """Sorted registered names, or ``{name: ModelEntry}`` with ``with_descriptions=True``."""
    names = sorted(_REGISTRY)
    return {n: _REGISTRY[n] for n in names} if with_descriptions else names


def get_model(name, **kwargs):
    """Build a registered model: ``get_model("resnet20", num_classes=10)``."""
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"get_model: unknown model {name!r}; choose one of: {', '.join(list_models())}") from None
    return entry.builder(**kwargs)
