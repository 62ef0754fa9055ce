"""Models by name: the networks of the papers topograph reproduces, and torchvision's.

=====================  =====================================================================
name                   model (parameters for the default input and 10 classes)
=====================  =====================================================================
``mlp-cifar``          seed 003's MLP 3072-64-64-32-10 with ReLU (CIFAR-10, flattened 32×32×3)
``mlp-fmnist``         its 784-input twin 784-64-64-32-10 for 28×28 data
``mlp-784-128-64-10``  the benchmark MLP of ``benchmarks/`` (W1, W3)
``mlp-784-256-128-64-10``  the MLP behind seed 000's "~0.90 ceiling" (its control (d))
``mlp-digits``         a small MLP 64-32-10 for scikit-learn's 8×8 digits
``cnn-small``          Conv32-Pool-Conv64-Pool-FC128-Dropout0.3-FC10 (seed 000; 421,642 on
                       28×28×1); reaches ≥ 91 % on Fashion-MNIST test
``fcp``                seed 001's FCP 784-50-50-10 without biases, softplus (or ReLU): 42,200
``lenet5``             seed 001's LeNet-5, softplus (or ReLU): 61,706 on 28×28×1
``autoencoder``        seed 001's autoencoder 784-32-32-32-784, softplus, sigmoid output, no
                       biases, trained with MSE against its input: 52,224
``lstm``               seed 001's LSTM for permuted-pixel MNIST: 28 steps × 28 features,
                       hidden 48, last state → linear 10 without bias: 15,456
``resnet20``           CIFAR ResNet-20 (He et al. 2016, option-A shortcuts, BatchNorm): 269,722
``resnet56``           CIFAR ResNet-56: 853,018
``resnet110``          CIFAR ResNet-110: 1,727,962
``resnet8``            CIFAR ResNet-8 (6n+2, n = 1; seed 002): 75,290
``resnet6``            our reading of seed 002's ResNet-6 (two stages of one block): 19,418
``vgg9``               VGG-9 with BatchNorm in Li et al. 2018's layout (seed 002): 2,789,706
``torchvision:NAME``   ``torchvision.models.get_model(NAME, weights=None)``, when the optional
                       ``vision`` extra is installed (``pip install "topograph[vision]"``)
=====================  =====================================================================

Image models take ``in_channels`` and ``image_size`` (the conv nets default to their paper's
data: 28×28×1 for seed 001's and ``cnn-small``, 32×32×3 for the ResNets and VGG-9; pass
``in_channels=1, image_size=28`` for MNIST) and ``num_classes``; every model takes a batch of
images ``(N, C, H, W)`` or the same images flattened ``(N, D)``; the LSTM takes sequences
``(N, steps, features)``.  Each model's class documents its source, its layout and its
parameter count.  Any user ``nn.Module`` works through the library API; these names serve
configs and the CLI.  :func:`build_model` checks keywords and seeds the initialisation.

One module per family: :mod:`~topograph.models.mlp`, :mod:`~topograph.models.cnn`,
:mod:`~topograph.models.resnet`, :mod:`~topograph.models.vgg`,
:mod:`~topograph.models.recurrent`, :mod:`~topograph.models.autoencoder`,
:mod:`~topograph.models.torchvision`; the registry is :mod:`~topograph.models.registry`.
"""

from topograph.models.autoencoder import Autoencoder
from topograph.models.cnn import LeNet5, SmallCNN
from topograph.models.mlp import FCP, MLP
from topograph.models.recurrent import SequenceLSTM
from topograph.models.registry import MODELS, build_factory_model, build_model, is_model_name, model_keywords
from topograph.models.resnet import CifarResNet, ShortcutA
from topograph.models.vgg import VGG

__all__ = [
    "Autoencoder", "CifarResNet", "FCP", "LeNet5", "MLP", "MODELS", "SequenceLSTM", "ShortcutA",
    "SmallCNN", "VGG", "build_factory_model", "build_model", "is_model_name", "model_keywords",
]
