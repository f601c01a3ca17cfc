"""One picture from each minidl.viz function, written to examples/notebooks/figures/.

    python examples/viz_figures.py            # needs matplotlib; the graph picture needs Graphviz's dot

LeNet-5 is first trained for two epochs on 1,024 of the shipped MNIST digits (a few seconds), so that its
filters, feature maps, saliency and Grad-CAM show something learned; ZFNet's deconvnet runs on untrained
weights (no ImageNet weights offline), so its picture shows each layer's footprint, not learned features.
"""
import tempfile
from pathlib import Path

import minidl  # before NumPy: minidl sets the thread policy its kernels need
import numpy as np

from minidl import nn, viz
from minidl.data import MNIST, DataLoader, Subset, load_mnist_sample
from minidl.data.transforms import Compose, Normalize, Pad
from minidl.models import get_model
from minidl.optim import SGD
from minidl.training import Trainer, write_metrics_csv

OUT = Path(__file__).resolve().parent / "notebooks" / "figures"


def trained_lenet5():
    prepare = Compose([Pad(2), Normalize((0.1307,), (0.3081,))])
    train = DataLoader(Subset(MNIST(sample=True, train=True), range(1024)), batch_size=32, shuffle=True,
                       transform=prepare, seed=0)
    test = DataLoader(Subset(MNIST(sample=True, train=False), range(500)), batch_size=250, transform=prepare)
    minidl.manual_seed(0)
    model = get_model("lenet5")
    trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9), None, train, test, progress=False)
    trainer.fit(2)
    digits, labels = next(iter(test))
    return model, trainer.history, digits[:2], labels[:2].numpy()


def save(figure, name):
    figure.savefig(OUT / name, dpi=90)
    print("wrote", OUT / name)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    small = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10))
    loss = minidl.functions.cross_entropy(small(minidl.randn(2, 1, 8, 8)), minidl.tensor([3, 7]))
    graph = viz.graph(loss, params=small)
    graph.render(OUT / "graph.dot")
    print("wrote", OUT / "graph.dot")
    try:
        graph.render(OUT / "graph.png")
        print("wrote", OUT / "graph.png")
    except RuntimeError as error:
        print(error)

    model, history, digits, labels = trained_lenet5()
    save(viz.filters(model.c1), "filters.png")
    save(viz.activations(model, digits[:1], ["c1", "s2", "c3"], max_maps=16), "activations.png")
    save(viz.saliency(model, digits, labels), "saliency.png")
    save(viz.grad_cam(model, digits, labels, layer="c3"), "grad_cam.png")
    with tempfile.TemporaryDirectory(prefix="lenet5-") as run:
        write_metrics_csv(Path(run) / "metrics.csv", history)
        save(viz.curves(run, title="LeNet-5, 1,024 MNIST sample digits"), "curves.png")

    image = np.kron(load_mnist_sample(train=False)[0][0] / 255.0, np.ones((8, 8)))[:224, :224]
    minidl.manual_seed(0)
    save(viz.deconv(get_model("zfnet"), minidl.tensor(np.stack([image] * 3)[None].astype(np.float32)),
                    layers=(1, 2, 3)), "deconv.png")
    save(viz.receptive_field(), "receptive_field.png")


if __name__ == "__main__":
    main()
