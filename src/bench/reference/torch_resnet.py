"""torchvision's ResNet blocks (BasicBlock, Bottleneck), written out for the PyTorch references (Debian
has no torchvision). Module names match torchvision's (conv1, bn1, conv2, bn2, conv3, bn3,
downsample.0/.1), so state dicts agree."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3x3 conv2)."""
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


def random_batchnorm(model, batches_tracked):
    """Random BatchNorm affine parameters and statistics (fixtures: eval-mode BN must matter)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(batches_tracked)
    return model.eval()


def layer(cin, planes, stride):
    """A ResNet-18 stage: two BasicBlocks, the first one strided."""
    return nn.Sequential(BasicBlock(cin, planes, stride), BasicBlock(planes, planes, 1))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 module tree (same names, same creation order), with configurable
    stage widths, classes and stem kernel so fixtures can stay small."""

    def __init__(self, widths=(64, 128, 256, 512), classes=1000, stem_kernel=7):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], stem_kernel, 2, stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for i, w in enumerate(widths):
            setattr(self, f"layer{i + 1}", layer(cin, w, 1 if i == 0 else 2))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def trunk(self, x, stages):
        """The feature map after `stages` stages: 3 = conv4 (layer3), 4 = conv5 (layer4)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class ResNet50(ResNet18):
    """torchvision's ResNet-50 module tree: Bottleneck stages of 3, 4, 6, 3 blocks."""

    def __init__(self, widths=(64, 128, 256, 512), classes=1000, stem_kernel=7):
        nn.Module.__init__(self)
        self.conv1 = nn.Conv2d(3, widths[0], stem_kernel, 2, stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, (3, 4, 6, 3))):
            blocks = [Bottleneck(cin, w, 1 if i == 0 else 2)] + [Bottleneck(w * 4, w, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w * 4
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)
