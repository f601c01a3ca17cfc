"""minidl.viz: the pictures a student wants to see of a network, each returned (never only drawn), so
they work in scripts (``fig.savefig("x.png")``) and notebooks (a returned Figure is shown) alike.

    graph(tensor, params=model)            the autograd graph as Graphviz DOT (no dependency; drawn with ``dot``)
    filters(conv_layer_or_weight)          a grid of filters: RGB for a first layer, filter x channel otherwise
    activations(model, x, layers)          feature maps of chosen layers (forward hooks)
    saliency(model, x, target)             |d score / d pixel| (Simonyan et al. 2014)
    grad_cam(model, x, target, layer)      Grad-CAM (Selvaraju et al. 2017), for any model in the zoo
    deconv(model, x, layers)               Zeiler & Fergus's deconvnet, any Conv/ReLU/MaxPool/LRN chain
    receptive_field(stacks)                paths from each input pixel to one unit: three 3x3 = one 7x7
    curves(run_dir)                        a training run's loss and accuracy per epoch

Pictures are matplotlib Figures (matplotlib is optional, imported on first use: ``pip install
minidl[plot]``); the numbers behind each are plain arrays, from ``filter_grid``, ``saliency_map``,
``grad_cam_map``, ``path_count_map``, ``read_metrics`` or ``figure.maps``.
"""
from minidl.viz.attribution import grad_cam, grad_cam_map, saliency, saliency_map
from minidl.viz.metrics import curves, read_metrics
from minidl.viz.deconvnet import deconv
from minidl.viz.features import activations, filter_grid, filters
from minidl.viz.dot import Digraph, graph
from minidl.viz.receptive import path_count_map, receptive_field

__all__ = ["Digraph", "activations", "curves", "deconv", "filter_grid", "filters", "grad_cam", "grad_cam_map",
           "graph", "path_count_map", "read_metrics", "receptive_field", "saliency", "saliency_map"]
