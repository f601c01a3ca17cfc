"""Containers: ``Sequential``, ``ModuleList`` and ``ModuleDict``.

Their members are ordinary submodules, so their names appear in ``state_dict`` keys:
``features.0.weight`` is the weight of the first layer of a ``Sequential`` called ``features``.
"""
import operator
from collections import OrderedDict

from minidl.nn.module import Module


def _index(container, idx):
    """An int index (negative allowed) into ``container``, checked."""
    idx = operator.index(idx)
    n = len(container)
    if not -n <= idx < n:
        raise IndexError(f"{type(container).__name__}: index {idx} is out of range for {n} modules")
    return idx + n if idx < 0 else idx


class _IndexedModules(Module):
    """Shared by Sequential and ModuleList: modules kept in order, under names "0", "1", ... by default."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def _key(self, idx):
        return list(self._modules)[_index(self, idx)]

    def __setitem__(self, idx, module):
        setattr(self, self._key(idx), module)

    def __delitem__(self, idx):
        keys = list(self._modules)[idx] if isinstance(idx, slice) else [self._key(idx)]
        for key in keys:
            delattr(self, key)
        self._renumber()

    def _renumber(self):
        """Give the modules the names "0", "1", ... again (after a deletion or an insertion)."""
        if all(key.isdigit() for key in self._modules):
            modules = list(self._modules.values())
            for key in list(self._modules):
                delattr(self, key)
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        """Insert ``module`` before position ``index``."""
        n = len(self)
        index = max(0, min(n, index + n if index < 0 else index))
        modules = list(self._modules.values())
        modules.insert(index, module)
        for key in list(self._modules):
            delattr(self, key)
        for i, m in enumerate(modules):
            self.add_module(str(i), m)
        return self


class Sequential(_IndexedModules):
    """Modules applied one after the other: ``Sequential(conv, relu, pool)(x) == pool(relu(conv(x)))``.

    Build it from modules (named "0", "1", ...) or from an OrderedDict of names to modules:

    >>> features = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    >>> features[0]                       # a module; features[1:] is a Sequential of the rest
    >>> head = nn.Sequential(OrderedDict([("fc", nn.Linear(512, 10)), ("softmax", nn.Softmax(dim=1))]))
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, not a Module")
                self.add_module(str(i), module)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(idx)]

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(_IndexedModules):
    """A list of modules whose parameters the parent registers (a plain Python list would hide them).

    >>> self.blocks = nn.ModuleList([Block(64) for _ in range(3)])    # blocks.0.conv.weight, ...
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[self._key(idx)]

    def __iadd__(self, modules):
        return self.extend(modules)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(): iterate over it in the parent's forward")


class ModuleDict(Module):
    """A dict of named modules, registered in insertion order.

    >>> self.heads = nn.ModuleDict({"cls": nn.Linear(512, 10), "box": nn.Linear(512, 4)})
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        if key not in self._modules:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key):
        module = self._modules[key]
        del self[key]
        return module

    def clear(self):
        for key in list(self._modules):
            del self[key]

    def update(self, modules):
        """Add modules from a dict (or ModuleDict) or an iterable of ``(name, module)`` pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for name, module in pairs:
            self[name] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(): index it in the parent's forward")
