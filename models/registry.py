"""The model registry: ``get_model(name, **kwargs)`` and ``list_models()``.

Each builder registers itself with ``@register_model(description, paper, recipe=...)``; the description is
one line, the paper its source (authors, title, venue and year), the recipe how the training command trains
it by default (``minidl.training.recipes``).
"""
import difflib

_REGISTRY = {}


def _close_names(name):
    """Registered names a mistyped one probably meant: an O typed for a 0 (or l for a 1) in the digits of
    a name is matched exactly first, then the closest spellings."""
    lowered = name.lower().replace("-", "_")
    for candidate in {lowered, lowered[:1] + lowered[1:].replace("o", "0").replace("l", "1")}:
        if candidate in _REGISTRY:
            return [candidate]
    return difflib.get_close_matches(lowered, sorted(_REGISTRY), n=3, cutoff=0.6)


class ModelEntry:
    def __init__(self, name, builder, description, paper, recipe=None):
        self.name, self.builder, self.description, self.paper = name, builder, description, paper
        self.recipe = recipe

    def __repr__(self):
        return f"{self.name}: {self.description} ({self.paper})"


def register_model(description, paper, name=None, recipe=None):
    """Register a builder under its function name (or ``name``).

    ``recipe``: how the training command trains the model by default, declared with the model (as timm
    registers a default config): a ``minidl.training.Recipe`` (dataset, input_size, channels, num_classes,
    optimizer, lr, schedule, batch_size, epochs, source), usually one of the shared ones in
    ``minidl.training.recipes``, or a dict of its fields. A model registered without one can be built but not
    trained by ``python -m minidl.train`` (which says so and exits 2).
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


def get_model(name, weights=None, **kwargs):
    """Build a registered model: ``get_model("resnet20", num_classes=10)``.

    ``weights``: a weights file (safetensors, PyTorch .pth, .npz, minidl) to load, with the known naming
    differences of other sources mapped (``minidl.models.pretrained``); a file made for a different network
    of the same name is refused with the reason.
    """
    try:
        entry = _REGISTRY[name]
    except KeyError:
        close = _close_names(str(name))
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValueError(f"get_model: unknown model {name!r}; {hint}choose one of: {', '.join(list_models())}") from None
    if weights is None:
        return entry.builder(**kwargs)
    from minidl.models.pretrained import load_pretrained  # it reads files: loaded when weights are asked for
    return load_pretrained(entry.builder(**kwargs), name, weights)
