"""torchvision's ResNet BasicBlock, written out for the PyTorch references (Debian has no torchvision).
Module names match torchvision's (conv1, bn1, conv2, bn2, downsample.0/.1), so state dicts agree."""
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


def layer(cin, planes, stride):
    """A ResNet-18 stage: two BasicBlocks, the first one strided."""
    return nn.Sequential(BasicBlock(cin, planes, stride), BasicBlock(planes, planes, 1))
